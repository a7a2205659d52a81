"""Decoding refuses a token list, features or CMVN statistics the model was not trained
with, and a damaged or hostile model file, with one line naming the files; a model saved
before models recorded their inputs still decodes, with a warning."""
from __future__ import annotations

import os

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from bljust.bin import decode as decode_bin
from bljust.bin import train_tokenizer
from bljust.features import cmvn as cmvn_lib
from bljust.nets.asr_model import build_asr_model
from bljust.utils import model_info
from bljust.utils.fileio import read_table

ENC = {"d_model": 16, "num_heads": 2, "ffn_dim": 32, "num_layers": 1, "kernel_size": 3}


def feats_dir(path, dim=8, seed=0, texts=None):
    os.makedirs(path, exist_ok=True)
    texts = texts or {"s1-a": "the cat", "s1-b": "a dog", "s2-c": "hello world"}
    with open(f"{path}/text", "w") as f:
        f.writelines(f"{u} {t}\n" for u, t in texts.items())
    rng = np.random.default_rng(seed)
    with kaldiio.WriteHelper(f"ark,scp:{path}/feats.ark,{path}/feats.scp") as w:
        for u in texts:
            w(u, rng.standard_normal((60, dim)).astype(np.float32))
    return path


def token_dir(path, text_file):
    assert train_tokenizer.main(["--text", text_file, "--out_dir", path, "--token_type", "char"]) == 0
    return path


@pytest.fixture
def exp(tmp_path):
    """A model as bljust.bin.train leaves it: model.pth and config.yaml with model_info."""
    d = {"data": feats_dir(str(tmp_path / "data"))}
    d["tok"] = token_dir(str(tmp_path / "tok"), f"{d['data']}/text")
    d["cmvn"] = str(tmp_path / "cmvn.ark")
    cmvn_lib.write_global(d["cmvn"], cmvn_lib.compute_stats(f"{d['data']}/feats.scp")["global"])
    vocab = len(open(f"{d['tok']}/tokens.txt").readlines())
    cfg = {"encoder": ENC, "model_info": model_info.describe(8, vocab, d["tok"], d["cmvn"], d["data"])}
    d["exp"] = str(tmp_path / "exp")
    os.makedirs(d["exp"])
    torch.save(build_asr_model(cfg, 8, vocab).state_dict(), f"{d['exp']}/model.pth")
    with open(f"{d['exp']}/config.yaml", "w") as f:
        yaml.safe_dump(cfg, f)
    d["out"] = str(tmp_path / "dec")
    return d


def decode(d, *extra, tok=None, data=None):
    return decode_bin.main(["--model_file", f"{d['exp']}/model.pth", "--data_dir", data or d["data"],
                            "--token_dir", tok or d["tok"], "--output_dir", d["out"], *extra])


def error_line(capfd) -> str:
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if "ERROR" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_matching_files_decode(exp):
    assert decode(exp, "--cmvn", exp["cmvn"]) == 0
    assert set(read_table(f"{exp['out']}/text", allow_empty_value=True)) == {"s1-a", "s1-b", "s2-c"}


def test_same_size_token_list_from_other_text_is_refused(exp, tmp_path, capfd):
    # as many distinct characters as the training text, but other ones: same size, other tokens
    train_chars = sorted(set("the cat a dog hello world".replace(" ", "")))
    other = "".join(chr(ord("m") + i) for i in range(len(train_chars)))
    (tmp_path / "other.txt").write_text(f"u1 {other}\n")
    tok = token_dir(str(tmp_path / "tok2"), str(tmp_path / "other.txt"))
    assert len(open(f"{tok}/tokens.txt").readlines()) == len(open(f"{exp['tok']}/tokens.txt").readlines())
    capfd.readouterr()
    assert decode(exp, tok=tok) == 1
    line = error_line(capfd)
    assert f"{tok}/tokens.txt" in line and f"{exp['tok']}/tokens.txt" in line and f"{exp['exp']}/model.pth" in line
    assert not os.path.exists(f"{exp['out']}/text")


def test_smaller_token_list_is_refused(exp, tmp_path, capfd):
    (tmp_path / "small.txt").write_text("u1 ab\n")
    tok = token_dir(str(tmp_path / "tok2"), str(tmp_path / "small.txt"))
    capfd.readouterr()
    assert decode(exp, tok=tok) == 1
    line = error_line(capfd)
    assert f"{tok}/tokens.txt has" in line and "outputs" in line


def test_other_cmvn_stats_and_feature_dim_are_refused(exp, tmp_path, capfd):
    other = feats_dir(str(tmp_path / "other"), seed=5)
    cmvn_lib.write_global(str(tmp_path / "o.ark"), cmvn_lib.compute_stats(f"{other}/feats.scp")["global"])
    capfd.readouterr()
    assert decode(exp, "--cmvn", str(tmp_path / "o.ark")) == 1
    line = error_line(capfd)
    assert str(tmp_path / "o.ark") in line and exp["cmvn"] in line
    wide = feats_dir(str(tmp_path / "wide"), dim=10)
    assert decode(exp, data=wide) == 1
    line = error_line(capfd)
    assert wide in line and "10 dimensions" in line and "expects 8" in line


def test_feature_setup_of_the_data_must_be_the_models(tmp_path, capfd):
    """feats_conf.yaml, the feature stage's record: another fs, fbank option or CMVN type is refused."""
    d = {"data": feats_dir(str(tmp_path / "data"))}
    conf = {"feature": "fbank", "fs": 16000, "feat_dim": 8, "cmvn_type": "global",
            "fbank": {"sample_rate": 16000, "num_mel_bins": 8, "low_freq": 20.0}}
    with open(f"{d['data']}/feats_conf.yaml", "w") as f:
        yaml.safe_dump(conf, f)
    d["tok"] = token_dir(str(tmp_path / "tok"), f"{d['data']}/text")
    vocab = len(open(f"{d['tok']}/tokens.txt").readlines())
    cfg = {"encoder": ENC, "model_info": model_info.describe(8, vocab, d["tok"], None, d["data"])}
    assert cfg["model_info"]["features"]["fs"] == 16000 and cfg["model_info"]["features"]["fbank"] == conf["fbank"]
    d["exp"], d["out"] = str(tmp_path / "exp"), str(tmp_path / "dec")
    os.makedirs(d["exp"])
    torch.save(build_asr_model(cfg, 8, vocab).state_dict(), f"{d['exp']}/model.pth")
    with open(f"{d['exp']}/config.yaml", "w") as f:
        yaml.safe_dump(cfg, f)
    assert decode(d) == 0
    for change, expect in (({"fs": 8000, "fbank": dict(conf["fbank"], sample_rate=8000)}, "fs 8000 (model: 16000)"),
                           ({"fbank": dict(conf["fbank"], low_freq=64.0)}, "fbank.low_freq 64.0"),
                           ({"cmvn_type": "utterance"}, "cmvn_type 'utterance' (model: 'global')")):
        with open(f"{d['data']}/feats_conf.yaml", "w") as f:
            yaml.safe_dump(dict(conf, **change), f)
        capfd.readouterr()
        assert decode(d) == 1
        line = error_line(capfd)
        assert expect in line and f"{d['data']}/feats_conf.yaml" in line and f"{d['exp']}/model.pth" in line


def test_model_without_fingerprint_decodes_with_a_warning(exp, capfd):
    cfg = yaml.safe_load(open(f"{exp['exp']}/config.yaml"))
    cfg["model_info"] = {k: cfg["model_info"][k] for k in ("input_dim", "vocab_size")}  # as older bljust wrote
    with open(f"{exp['exp']}/config.yaml", "w") as f:
        yaml.safe_dump(cfg, f)
    capfd.readouterr()
    assert decode(exp) == 0
    err = capfd.readouterr().err
    assert "records no token list fingerprint" in err and os.path.exists(f"{exp['out']}/text")


@pytest.mark.parametrize("how", ["truncated", "empty", "random", "directory"])
def test_damaged_model_file_is_one_line(exp, capfd, how):
    p = f"{exp['exp']}/model.pth"
    data = open(p, "rb").read()
    os.unlink(p)
    if how == "directory":
        os.makedirs(p)
    else:
        with open(p, "wb") as f:
            f.write({"truncated": data[: len(data) // 2], "empty": b"", "random": os.urandom(2048)}[how])
    capfd.readouterr()
    assert decode(exp) == 1
    assert p in error_line(capfd)


def test_decoding_into_a_locked_output_dir_exits(exp, capfd):
    from bljust.utils.lock import hold_dir

    with hold_dir(exp["out"], "decoding"):  # another open file description: flock conflicts as between processes
        capfd.readouterr()
        assert decode(exp) == 1
        assert f"pid {os.getpid()}" in error_line(capfd)
    assert decode(exp) == 0


def test_ngpu_without_cuda(exp, capfd):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the error is for machines without it")
    capfd.readouterr()
    assert decode(exp, "--ngpu", "1") == 1
    assert "--ngpu 0" in error_line(capfd)
