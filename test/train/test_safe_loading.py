"""A hostile .pth (its unpickling would create a marker file) is refused on every path that
loads a torch file, with one line naming the file, and the marker never appears."""
from __future__ import annotations

import os

import pytest
import torch
import yaml

from exp_helpers import copy_exp, make_corpus, train, write_hostile

from bljust.bin import average_checkpoints as avg_bin
from bljust.bin import convert_upstream as conv_bin
from bljust.bin import decode as decode_bin
from bljust.bin import decode_superb as dec_superb_bin
from bljust.bin import pretrain_upstream as pretrain_bin
from bljust.bin import ssft as ssft_bin
from bljust.bin import train_superb as superb_bin
from bljust.train.checkpoint import model_state


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_hubert, wav_data_dir):
    root = str(tmp_path_factory.mktemp("safe"))
    c = make_corpus(root)
    assert train(c, f"{root}/exp_sup") == 0
    assert train(c, f"{root}/exp_bl", bilevel=True) == 0
    c["exp_sup"], c["exp_bl"] = f"{root}/exp_sup", f"{root}/exp_bl"
    c["wav"] = wav_data_dir(f"{root}/wav", n=3)
    c["arch"], c["arch_dict"] = f"{root}/tiny_upstream.yaml", dict(tiny_hubert)
    with open(c["arch"], "w") as f:
        yaml.safe_dump(tiny_hubert, f)
    return c


def test_the_payload_runs_when_unpickled(tmp_path):
    """The control: without weights_only the file does create the marker (so the tests below can fail)."""
    marker = tmp_path / "pwned"
    write_hostile(str(tmp_path / "x.pth"), str(marker))
    torch.load(tmp_path / "x.pth", weights_only=False)
    assert marker.exists()


def _decode(c, tmp, marker):
    exp = copy_exp(c["exp_sup"], f"{tmp}/exp")
    model = os.path.realpath(f"{exp}/model.pth")
    write_hostile(model, marker, like=model_state(model))  # a valid state dict plus the payload
    return f"{exp}/model.pth", decode_bin.main(["--model_file", f"{exp}/model.pth", "--data_dir", c["dev"], "--token_dir", c["tok"],
                                   "--output_dir", f"{tmp}/dec"])


def _resume(key, bilevel):
    def go(c, tmp, marker):
        exp = copy_exp(c[key], f"{tmp}/exp")
        ck = write_hostile(f"{exp}/checkpoint.pth", marker)  # checkpoint.prev.pth stays: it must not be used
        assert os.path.exists(f"{exp}/checkpoint.prev.pth")
        return ck, train(c, exp, *([] if bilevel else ["--trainer.max_epoch", "3"]), bilevel=bilevel)
    return go


def _average_exp_dir(c, tmp, marker):
    exp = copy_exp(c["exp_sup"], f"{tmp}/exp")
    ck = write_hostile(f"{exp}/checkpoint.pth", marker)
    return ck, avg_bin.main(["--exp_dir", exp, "--metric", "valid_loss", "--nbest", "2"])


def _average_models(c, tmp, marker):
    exp = copy_exp(c["exp_sup"], f"{tmp}/exp")
    ep = write_hostile(f"{tmp}/evil_epoch.pth", marker, like=model_state(f"{exp}/model.pth"))
    return ep, avg_bin.main(["--output", f"{tmp}/avg.pth", f"{exp}/model.pth", ep])


def _convert_upstream(c, tmp, marker):
    src = write_hostile(f"{tmp}/hubert.pt", marker)
    return src, conv_bin.main([src, f"{tmp}/out.pt", "--to", "fairseq"])


def _upstream_ckpt(c, tmp, marker):
    src = write_hostile(f"{tmp}/hubert.pt", marker)
    return src, ssft_bin.main(["--train_data_dir", c["wav"], "--output_dir", f"{tmp}/ssft",
                               "--upstream.ckpt", src, "--trainer.max_updates", "1"])


def _ssft_resume(c, tmp, marker):
    os.makedirs(f"{tmp}/ssft")
    ck = write_hostile(f"{tmp}/ssft/checkpoint.pth", marker)
    return ck, ssft_bin.main(["--train_data_dir", c["wav"], "--output_dir", f"{tmp}/ssft", "--upstream.arch", c["arch"],
                              "--trainer.max_updates", "1", "--trainer.max_seconds", "0.3"])


def _superb_resume(c, tmp, marker):
    os.makedirs(f"{tmp}/sup")
    ck = write_hostile(f"{tmp}/sup/checkpoint.pth", marker)
    return ck, superb_bin.main(["--train_data_dir", c["wav"], "--output_dir", f"{tmp}/sup", "--upstream.arch",
                                c["arch"], "--trainer.max_updates", "1", "--model.lstm_dim", "8"])


def _superb_decode(c, tmp, marker):
    os.makedirs(f"{tmp}/sup")
    with open(f"{tmp}/sup/config.yaml", "w") as f:
        yaml.safe_dump({"task": "asr", "upstream": {"arch": c["arch_dict"], "ckpt": None, "trust_checkpoint": False},
                        "model": {"lstm_dim": 8}, "trainer": {}}, f)
    with open(f"{tmp}/sup/tokens.txt", "w") as f:
        f.write("<blank>\n<unk>\nA\n")
    ds = write_hostile(f"{tmp}/sup/downstream.pth", marker)
    return ds, dec_superb_bin.main(["--model_dir", f"{tmp}/sup", "--data_dir", c["wav"], "--output_dir", f"{tmp}/d"])


def _pretrain_resume(c, tmp, marker):
    os.makedirs(f"{tmp}/pt")
    ck = write_hostile(f"{tmp}/pt/checkpoint.pth", marker)
    return ck, pretrain_bin.main(["--train_data_dirs", c["wav"], "--output_dir", f"{tmp}/pt", "--upstream.arch",
                                  c["arch"], "--trainer.max_updates", "1"])


PATHS = {"decode": _decode, "resume_supervised": _resume("exp_sup", False), "resume_bilevel": _resume("exp_bl", True),
         "average_exp_dir": _average_exp_dir, "average_models": _average_models, "convert_upstream": _convert_upstream,
         "upstream_checkpoint": _upstream_ckpt, "ssft_resume": _ssft_resume, "superb_resume": _superb_resume,
         "superb_decode": _superb_decode, "pretrain_resume": _pretrain_resume}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_hostile_file_is_refused(world, tmp_path, capfd, path):
    marker = str(tmp_path / "pwned")
    capfd.readouterr()
    bad_file, rc = PATHS[path](world, str(tmp_path), marker)
    err = capfd.readouterr().err
    assert not os.path.exists(marker), f"{path}: the file's code ran"
    assert rc != 0, err
    assert "refused" in err and bad_file in err, err
    assert "Traceback" not in err


UPSTREAM_TRAINERS = {
    "ssft": (ssft_bin, lambda c, out: ["--train_data_dir", c["wav"], "--output_dir", out, "--upstream.arch", c["arch"],
                                       "--trainer.max_updates", "2", "--trainer.max_steps", "1",
                                       "--trainer.accum_grad", "1", "--trainer.max_seconds", "0.3"],
             ["--head_dim", "8"], "head_dim: 256 -> 8"),
    "superb": (superb_bin, lambda c, out: ["--train_data_dir", c["wav"], "--output_dir", out, "--upstream.arch",
                                           c["arch"], "--trainer.max_updates", "2", "--trainer.max_steps", "1",
                                           "--model.lstm_dim", "8"],
               ["--model.lstm_dim", "4"], "model.lstm_dim: 8 -> 4"),
    "pretrain": (pretrain_bin, lambda c, out: ["--train_data_dirs", c["wav"], "--output_dir", out, "--upstream.arch",
                                               c["arch"], "--trainer.max_updates", "2", "--trainer.max_steps", "1",
                                               "--fbank.num_mel_bins", "20"],
                 ["--fbank.num_mel_bins", "24"], "fbank.num_mel_bins: 20 -> 24"),
}


@pytest.mark.parametrize("name", sorted(UPSTREAM_TRAINERS))
def test_upstream_trainers_refuse_a_changed_run_untouched(world, tmp_path, capfd, name):
    """SSFT, SUPERB and pre-training: a rerun with another model setting stops before config.yaml changes."""
    mod, args, change, expect = UPSTREAM_TRAINERS[name]
    out = str(tmp_path / name)
    assert mod.main(args(world, out)) == 0  # stopped early: a checkpoint to resume
    conf = open(f"{out}/config.yaml").read()
    ck = open(f"{out}/checkpoint.pth", "rb").read()
    capfd.readouterr()
    assert mod.main(args(world, out) + change) == 1
    err = capfd.readouterr().err
    assert expect in err and "Traceback" not in err, err
    assert open(f"{out}/config.yaml").read() == conf and open(f"{out}/checkpoint.pth", "rb").read() == ck
