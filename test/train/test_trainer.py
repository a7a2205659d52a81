"""Trainer behaviour a user relies on: batching, skipping non-finite losses, outputs, CER."""
import os

import pytest
import torch

from bljust.data.batching import epoch_order, make_batches, shard
from bljust.train.base import TooManyBadSteps, edit_distance, greedy_ctc
from bljust.train.run import train
from bljust.utils.events import read_scalars
from train_synth import CharTokenizer, make_data_dir, tiny_config


def test_batches_respect_bins_and_cover_everything():
    lengths = {f"u{i:03d}": 20 + (i * 37) % 200 for i in range(100)}
    batches = make_batches(lengths, batch_bins=1000, min_batch_size=2)
    flat = [k for b in batches for k in b]
    assert sorted(flat) == sorted(lengths)
    for b in batches:
        assert len(b) >= 2
        assert max(lengths[k] for k in b) * len(b) <= 1000 or len(b) == 2
    # similar lengths go together
    spread = [max(lengths[k] for k in b) - min(lengths[k] for k in b) for b in batches]
    assert max(spread) < 60
    # the order is a seeded function of the epoch
    assert epoch_order(len(batches), 0, 1) == epoch_order(len(batches), 0, 1)
    assert epoch_order(len(batches), 0, 1) != epoch_order(len(batches), 0, 2)
    assert shard(["a", "b", "c"], 0, 2) + shard(["a", "b", "c"], 1, 2) == ["a", "c", "b"]


def test_greedy_ctc_and_edit_distance():
    lp = torch.log(torch.tensor([[[.1, .9, 0], [.1, .9, 0], [.9, .1, 0], [.1, .9, 0], [0, .1, .9]]]) + 1e-9)
    assert greedy_ctc(lp, torch.tensor([5])) == [[1, 1, 2]]
    assert greedy_ctc(lp, torch.tensor([2])) == [[1]]
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "ab") == 2


def _bad_text_dir(tmp):
    """One utterance whose transcript is far longer than its frames allow: CTC loss is inf."""
    d = make_data_dir(f"{tmp}/train", 12)
    lines = open(f"{d}/text").read().splitlines()
    k = lines[0].split()[0]
    lines[0] = f"{k} " + "ab" * 200
    open(f"{d}/text", "w").write("\n".join(lines) + "\n")
    make_data_dir(f"{tmp}/dev", 3, seed=1)
    return k


def test_nonfinite_losses_are_skipped_and_counted(tmp_path, caplog):
    tmp = str(tmp_path)
    _bad_text_dir(tmp)
    conf = tiny_config(tmp, f"{tmp}/exp", max_epoch=2, save_interval_steps=0)
    conf["ctc"]["zero_infinity"] = False
    conf["batching"]["batch_bins"] = 200  # small batches: the bad one is skipped alone
    train(conf, tokenizer=CharTokenizer())
    st = torch.load(f"{tmp}/exp/checkpoint.pth", weights_only=True)["loop"]
    assert st["bad_steps"] == 2  # once per epoch
    assert "non-finite loss" in caplog.text and "[2 so far" in caplog.text
    for p in torch.load(f"{tmp}/exp/model.pth", weights_only=True).values():
        assert torch.isfinite(p).all()
    with open(f"{tmp}/exp/images/loss.png", "rb") as f:  # the curves are written, whatever the losses
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    tb = read_scalars(f"{tmp}/exp")
    assert "train/loss" in tb and "round/train_loss" in tb

    conf = tiny_config(tmp, f"{tmp}/exp2", max_epoch=2, max_bad_steps=1)
    conf["ctc"]["zero_infinity"] = False
    with pytest.raises(TooManyBadSteps, match="max_bad_steps"):
        train(conf, tokenizer=CharTokenizer())


def test_small_model_learns(tmp_path):
    """The synthetic letters are easy: a few epochs bring the validation loss well down."""
    tmp = str(tmp_path)
    make_data_dir(f"{tmp}/train", 48)
    make_data_dir(f"{tmp}/dev", 8, seed=1)
    conf = tiny_config(tmp, f"{tmp}/exp", max_epoch=6, save_interval_steps=0)
    conf["specaug"] = None
    conf["optim"]["lr"] = 3e-3
    train(conf, tokenizer=CharTokenizer())
    hist = torch.load(f"{tmp}/exp/checkpoint.pth", weights_only=True)["loop"]["history"]
    assert hist[-1]["valid_loss"] < 0.6 * hist[0]["valid_loss"]
