"""Decoding a data dir end to end with a stand-in model, merging split outputs."""
import os

import kaldiio
import numpy as np
import pytest
import torch

import bljust.decode.runner as runner
from bljust.bin import decode as decode_bin
from bljust.utils.fileio import read_table

TOKENS = ["<blank>", "<unk>", "a", "b", "c"]


class StandInModel(torch.nn.Module):
    """Identity encoder: the features are already logits over the 5 tokens."""

    def encode(self, feats, feat_lens):
        return feats, feat_lens

    def ctc_log_probs(self, enc):
        return torch.log_softmax(enc * 5, dim=-1)


class StandInTokenizer:
    blank_id = 0

    def decode(self, ids):
        return "".join(TOKENS[i] for i in ids).replace("c", " ").strip()

    def ids_to_tokens(self, ids):
        return [TOKENS[i] for i in ids]


def frames(seq):
    return np.eye(len(TOKENS), dtype=np.float32)[seq]


UTTS = {"s1-u1": [2, 2, 0, 2, 3], "s1-u2": [0, 3, 4, 2, 0, 0], "s2-u3": [4]}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    d.mkdir()
    with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
        for u, seq in UTTS.items():
            w(u, frames(seq))
    (d / "text").write_text("".join(f"{u} x\n" for u in UTTS))
    monkeypatch.setattr("bljust.nets.model_file.load_model_for_inference",
                        lambda model_file, config_file=None, device="cpu": (StandInModel(), {}))
    monkeypatch.setattr(runner, "load_tokenizer", lambda token_dir: StandInTokenizer())
    return str(d)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_decode_writes_text_token_score(data_dir, tmp_path, method):
    out = str(tmp_path / "out")
    rc = decode_bin.main(["--model_file", "m.pth", "--data_dir", data_dir, "--token_dir", "t", "--output_dir", out,
                          "--decode_method", method, "--batch_size", "2"])
    assert rc == 0
    assert read_table(f"{out}/token") == {"s1-u1": "a a b", "s1-u2": "b c a", "s2-u3": "c"}
    text = read_table(f"{out}/text", allow_empty_value=True)
    assert text == {"s1-u1": "aab", "s1-u2": "b a", "s2-u3": ""}
    scores = {u: float(v) for u, v in read_table(f"{out}/score").items()}
    assert all(-1.0 < s <= 0 for s in scores.values())
    assert list(open(f"{out}/text").read().split("\n")[0].split()[:1]) == ["s1-u1"]  # C-sorted


def test_nbest_dirs(data_dir, tmp_path):
    out = str(tmp_path / "out")
    assert decode_bin.main(["--model_file", "m", "--data_dir", data_dir, "--token_dir", "t", "--output_dir", out,
                            "--decode_method", "beam", "--beam_size", "4", "--nbest", "2"]) == 0
    assert read_table(f"{out}/1best_recog/token") == read_table(f"{out}/token")
    second = read_table(f"{out}/2best_recog/token", allow_empty_value=True)
    assert second["s1-u1"] != "a a b"


def test_missing_features_fail_clearly_or_skip_with_count(data_dir, tmp_path, capfd):
    with open(os.path.join(data_dir, "text"), "a") as f:
        f.write("s3-lost x\n")
    with pytest.raises(ValueError, match=r"1 utterance\(s\).*no features.*s3-lost"):
        runner.decode_data_dir("m", data_dir, "t", str(tmp_path / "o1"))
    rc = decode_bin.main(["--model_file", "m", "--data_dir", data_dir, "--token_dir", "t",
                          "--output_dir", str(tmp_path / "o1")])
    assert rc == 1 and "s3-lost" in capfd.readouterr().err and not os.path.exists(tmp_path / "o1" / "text")
    rc = decode_bin.main(["--model_file", "m", "--data_dir", data_dir, "--token_dir", "t",
                          "--output_dir", str(tmp_path / "o2"), "--allow_missing"])
    assert rc == 0 and "skipping 1 utterance(s)" in capfd.readouterr().err
    assert len(read_table(str(tmp_path / "o2" / "token"), allow_empty_value=True)) == 3


def test_merge_checks_completeness_and_duplicates(data_dir, tmp_path):
    parts = []
    for j, keys in enumerate([["s2-u3"], ["s1-u1", "s1-u2"]]):
        p = tmp_path / f"output.{j + 1}"
        p.mkdir()
        for name in ("text", "token", "score"):
            (p / name).write_text("".join(f"{k} v{name}\n" for k in keys))
        parts.append(str(p))
    out = str(tmp_path / "merged")
    assert decode_bin.main(["merge", "--data_dir", data_dir, "--output_dir", out] + parts) == 0
    assert open(f"{out}/text").read() == "s1-u1 vtext\ns1-u2 vtext\ns2-u3 vtext\n"
    with pytest.raises(ValueError, match="s2-u3"):
        runner.merge_outputs(parts[1:], out, data_dir)
    with pytest.raises(ValueError, match="more than one part"):
        runner.merge_outputs(parts + parts[:1], out, data_dir)
    os.unlink(os.path.join(parts[0], "token"))
    with pytest.raises(FileNotFoundError, match="output.1/token"):
        runner.merge_outputs(parts, out, data_dir)


def test_real_model_and_tokenizer_end_to_end(tmp_path):
    """The real checkpoint loader, model and tokenizer (random weights): decode, merge, score."""
    import yaml

    from bljust.bin import score as score_bin
    from bljust.bin import train_tokenizer
    from bljust.nets.asr_model import build_asr_model
    from bljust.score import sclite as sc

    sc.find_sclite()  # tools/setup.sh always installs it: a missing sclite is a broken install, not a skip

    d = tmp_path / "data"
    d.mkdir()
    texts = {"s1-a": "the cat", "s1-b": "a dog", "s2-c": "hello world"}
    (d / "text").write_text("".join(f"{u} {t}\n" for u, t in texts.items()))
    (d / "utt2spk").write_text("".join(f"{u} {u[:2]}\n" for u in texts))
    rng = np.random.default_rng(0)
    with kaldiio.WriteHelper(f"ark,scp:{d}/feats.ark,{d}/feats.scp") as w:
        for u in texts:
            w(u, rng.standard_normal((60, 8)).astype(np.float32))
    assert train_tokenizer.main(["--text", str(d / "text"), "--out_dir", str(tmp_path / "tok"),
                                 "--token_type", "char"]) == 0
    vocab = len(open(tmp_path / "tok" / "tokens.txt").read().split("\n")) - 1
    cfg = {"encoder": {"d_model": 16, "num_heads": 2, "ffn_dim": 32, "num_layers": 1, "kernel_size": 3},
           "model_info": {"input_dim": 8, "vocab_size": vocab}}
    exp = tmp_path / "exp" / "tiny"
    exp.mkdir(parents=True)
    torch.save(build_asr_model(cfg, 8, vocab).state_dict(), exp / "model.pth")
    (exp / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = exp / "decode_test" / "logdir" / "output.1"
    assert decode_bin.main(["--model_file", str(exp / "model.pth"), "--data_dir", str(d), "--token_dir",
                            str(tmp_path / "tok"), "--output_dir", str(out), "--decode_method", "beam"]) == 0
    assert decode_bin.main(["merge", "--data_dir", str(d), "--output_dir", str(exp / "decode_test"), str(out)]) == 0
    assert set(read_table(str(exp / "decode_test" / "token"), allow_empty_value=True)) == set(texts)
    assert score_bin.main(["--data_dir", str(d), "--decode_dir", str(exp / "decode_test"), "--token_dir",
                           str(tmp_path / "tok"), "--metrics", "wer,cer,ter"]) == 0
    assert sc.parse_result(str(exp / "decode_test" / "score_ter" / "result.txt"))["Wrd"] > 0


def test_merge_flag_form_with_nj(data_dir, tmp_path):
    out = tmp_path / "dec"
    for j, keys in enumerate([["s1-u1"], ["s1-u2", "s2-u3"]]):
        p = out / "logdir" / f"output.{j + 1}"
        p.mkdir(parents=True)
        for name in ("text", "token", "score"):
            (p / name).write_text("".join(f"{k} v\n" for k in keys))
    assert decode_bin.main(["--merge", "--nj", "2", "--data_dir", data_dir, "--output_dir", str(out)]) == 0
    assert list(read_table(str(out / "score"))) == ["s1-u1", "s1-u2", "s2-u3"]
