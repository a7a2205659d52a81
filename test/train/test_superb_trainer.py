"""SUPERB downstream training, decoding to Kaldi text, PER scoring, the before/after
table; the waveform dataset under them (targets, segments, length buckets)."""
from __future__ import annotations

import os
import shutil

import pytest
import torch

from bljust.bin import decode_superb as dec_bin
from bljust.data.batching import bucket_batches
from bljust.data.wav_dataset import WavDataset, build_token_list
from bljust.text.units import text_units, units_to_text
from bljust.train.config import load_config
from bljust.train.superb_trainer import decode_superb, train_superb
from bljust.utils.events import read_scalars
from bljust.utils.fileio import read_table

pytestmark = pytest.mark.usefixtures("one_thread")


def superb_conf(arch, data, out, task, **over):
    args = ["--task", task, "--train_data_dir", data, "--valid_data_dir", data, "--output_dir", out,
            "--optim.lr", "5e-3", "--trainer.max_updates", "12", "--trainer.valid_interval", "6",
            "--trainer.log_interval", "3", "--model.proj_dim", "16", "--batching.max_batch", "4"]
    if task == "asr":  # the PR head is linear: the LSTM keys would be errors
        args += ["--model.lstm_dim", "16"]
    for k, v in over.items():
        args += [f"--{k}", str(v)]
    conf = load_config(None, args, "superb")
    conf["upstream"]["arch"] = arch
    return conf


def test_units_and_token_list(tmp_path, wav_data_dir):
    assert text_units("GO ON", "char") == list("GO|ON")
    assert units_to_text(list("GO|ON"), "char") == "GO ON"
    assert units_to_text(["h", "@U"], "phn") == "h @U"
    data = wav_data_dir(str(tmp_path))
    toks = build_token_list(data, "char")
    assert toks[:2] == ["<blank>", "<unk>"] and "|" in toks and "H" in toks
    ds = WavDataset(data, "phn", build_token_list(data, "phn"))
    assert len(ds) == 5 and all(t for t in ds.targets)
    _, wav, _ = ds[0]
    assert wav.dtype == torch.float32 and wav.abs().max() <= 1.0


def test_segments_and_length_buckets(tmp_path, wav_data_dir):
    data = wav_data_dir(str(tmp_path), n=2, text=False)
    seg = tmp_path / "seg"
    seg.mkdir()
    shutil.copy(os.path.join(data, "wav.scp"), seg / "wav.scp")
    (seg / "segments").write_text("s1 u01 0.0 0.25\ns2 u01 0.25 0.5\n")
    ds = WavDataset(str(seg))
    assert ds.utts == ["s1", "s2"] and ds.lengths == [4000, 4000] and ds.load(1).numel() == 4000
    lengths = [100, 900, 300, 200, 1000, 50]
    batches = bucket_batches(lengths, max_samples=1000, max_batch=3, seed=3)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(len(b) * max(lengths[i] for i in b) <= 1000 or len(b) == 1 for b in batches)


@pytest.mark.parametrize("task,cache", [("pr", True), ("asr", False)])
def test_train_decode_score(tmp_path, task, cache, tiny_hubert, wav_data_dir):
    data = wav_data_dir(str(tmp_path))
    out = str(tmp_path / f"superb_before_{task}")
    res = train_superb(superb_conf(tiny_hubert, data, out, task, **{"trainer.cache_upstream": cache}))
    losses = [h[1] for h in res["history"]]
    assert losses[-1] < losses[0]
    assert len(res["valid"]) == 2 and os.path.isfile(os.path.join(out, "downstream.pth"))
    tb = read_scalars(out)
    assert len(tb["train/loss"]) == len(losses) and len(tb["round/error_rate"]) == 2
    assert abs(sum(res["layer_weights"]) - 1) < 1e-5
    dec = os.path.join(out, "decode_greedy", "d")
    assert dec_bin.main(["--model_dir", out, "--data_dir", data, "--output_dir", dec, "--write_ref"]) == 0
    hyp = read_table(os.path.join(dec, "text"), allow_empty_value=True)
    assert sorted(hyp) == [f"u{i:02d}" for i in range(5)]
    ref = read_table(os.path.join(dec, "ref", "text"))
    assert ref["u01"] == "h e l l o"  # phonemes as words: sclite's WER is the PER
    # resume: a finished run does not train again
    again = train_superb(superb_conf(tiny_hubert, data, out, task, **{"trainer.cache_upstream": cache}))
    assert again["history"] == res["history"]


def test_beam_decoding_matches_greedy_shape(tmp_path, tiny_hubert, wav_data_dir):
    data = wav_data_dir(str(tmp_path), n=3)
    out = str(tmp_path / "m")
    train_superb(superb_conf(tiny_hubert, data, out, "pr", **{"trainer.max_updates": 2, "trainer.valid_interval": 2}))
    n = decode_superb(out, data, str(tmp_path / "b"), method="beam", beam_size=3)
    assert n == 3 and len(read_table(str(tmp_path / "b" / "text"), allow_empty_value=True)) == 3


def test_max_steps_stops_early_and_max_updates_sets_the_schedule(tmp_path, tiny_hubert, wav_data_dir):
    """trainer.max_steps means "stop early" here as in every trainer; the schedule's length is max_updates."""
    import torch

    data = wav_data_dir(str(tmp_path), n=3)
    out = str(tmp_path / "m")
    res = train_superb(superb_conf(tiny_hubert, data, out, "pr", **{"trainer.max_updates": 4, "trainer.max_steps": 2,
                                                       "trainer.valid_interval": 2, "scheduler.name": "linear",
                                                       "scheduler.warmup_steps": 1, "optim.lr": 0.3}))
    assert res["step"] == 2
    sched = torch.load(os.path.join(out, "checkpoint.pth"), weights_only=True)["method"]["scheduler"]
    # linear decay over 4 updates: after 2 the lr is 1/3 of the peak (over 2 updates it would be 0)
    assert sched["_last_lr"][0] == pytest.approx(0.1)


def test_summary_table(tmp_path):
    for tag, err in (("before", "50.0"), ("after", "40.0")):
        d = tmp_path / f"superb_{tag}_pr" / "decode_greedy" / "test" / "score_wer"
        d.mkdir(parents=True)
        (d / "result.txt").write_text(
            "| Sum/Avg |   10    100  |  60.0   30.0   10.0    0.0   %s   90.0 |\n" % err)
    table = dec_bin.summarize(str(tmp_path))
    assert "| before | 50.0 |" in table and "| after | 40.0 |" in table and "+20.0%" in table
