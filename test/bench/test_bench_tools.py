"""The loader and scale benchmarks: their corpus model, their FLOP formula, and that they run."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import bench_loader  # noqa: E402
import synth_librispeech as synth  # noqa: E402


def run(script, *args):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, os.path.join(HERE, script), *args], capture_output=True, text=True,
                         timeout=600, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_synthetic_librispeech_matches_the_corpus_statistics():
    d = synth.durations(synth.UTTS)
    assert abs(d.mean() - 12.3) < 0.05 and d.min() >= 1.0 and d.max() <= 35.0
    assert abs(d.sum() / 3600 - 960.9) < 2
    utts, spks = synth.utt_ids(20000, 200)
    assert len(set(utts)) == 20000 and len(set(spks)) == 200
    assert utts == sorted(utts, key=str.encode)  # Kaldi's C order
    assert all(u.startswith(s + "-") and len(u.split("-")) == 3 for u, s in zip(utts, spks))
    words = [len(t.split()) for t in synth.texts(d[:2000])]
    assert 30 < np.mean(words) < 38


def test_the_flop_formula_counts_the_weights_of_the_recipe_model():
    from bljust.nets.asr_model import build_asr_model

    conf = bench_loader.load_config(bench_loader.CONF, [])
    with torch.device("meta"):
        model = build_asr_model(conf, 80, bench_loader.VOCAB)
    flops, text, parts = bench_loader.model_flops_per_frame(conf, 12.3)
    blocks = sum(p.numel() for name, p in model.encoder.blocks.named_parameters()
                 if name.endswith("weight") and p.dim() > 1)  # matrices and convolution kernels, not norms
    assert parts["blocks"] == blocks
    assert parts["head"] == model.ctc_head.weight.numel()
    conv1, conv2 = [m for m in model.encoder.subsample.conv if isinstance(m, torch.nn.Conv2d)]
    f1 = (80 - 3) // 2 + 1
    f2 = (f1 - 3) // 2 + 1
    # each kernel is applied at every (time, freq) position behind one output frame
    assert parts["subsampling"] == 2 * f1 * conv1.weight.numel() + f2 * conv2.weight.numel() + \
        model.encoder.subsample.out.weight.numel()
    assert "FLOPs per input frame" in text and 1.0e8 < flops < bench_loader.counted_flops_per_frame(conf, 1230)


def test_bench_loader_prints_every_worker_count_beside_the_gpu(tmp_path):
    out = run("bench_loader.py", "--utts", "30", "--batches", "2", "--workers", "0", "1", "--raw_seconds", "10")
    for name in ("float32 ark", "compressed ark"):
        for w in (0, 1):
            assert f"{name:16s} workers {w}:" in out, out
    assert "one H100 at the 40% MFU goal" in out and out.strip().splitlines()[-1].startswith("loader/GPU: ")
    assert "FLAC decoding" in out and "raw (CPU fbank)  one process" in out and "raw (GPU fbank)  one process" in out


def test_bench_scale_runs_every_step_within_the_goal_on_a_small_directory():
    out = run("bench_scale.py", "--utts", "3000", "--nbpe", "300", "--nj", "4")
    steps = ["validate", "split 4 (speakers)", "split 4 (--per-utt)", "subset 28539", "speed perturb 0.9",
             "combine (x1.0 + x0.9)", "tokenizer (unigram 300)",
             "filter (+ CTC lengths)", "dataset + batching"]
    for step in steps:
        line = next((x for x in out.splitlines() if x.startswith(step)), None)
        assert line is not None and line.rstrip().endswith("ok (goal < 60 s, < 2 GB)"), out
    assert "ASRDataset" in out and out.strip().splitlines()[-1].startswith("worst: ")


def test_the_appetite_is_the_largest_measured_training_figure_of_ours(tmp_path, monkeypatch):
    results = tmp_path / "RESULTS.md"
    results.write_text(
        "| `bench_train.py`, LibriSpeech 512x7 Conformer-CTC, bf16 | batch 16x1500: ours 698,819 frames/s, MFU 12.3%; "
        "torchaudio's Conformer 592,225 frames/s, 10.4%. Batch 64x1500: ours 961,635 frames/s, 16.7%; torchaudio "
        "979,911, 17.0%. With `torch.compile`: ours 1,274,442 frames/s | MFU >= 40% | not met |\n"
        "| `bench_bilevel.py` | 2,000,000 frames/s | x | y |\n")
    monkeypatch.setattr(bench_loader, "RESULTS", str(results))
    assert bench_loader.measured_appetite()[0] == 1_274_442
    results.write_text("no GPU figures yet\n")
    assert bench_loader.measured_appetite()[0] is None
    monkeypatch.setattr(bench_loader, "RESULTS", str(tmp_path / "missing.md"))
    assert bench_loader.measured_appetite() == (None, "")


def test_bench_jobs_splits_each_stage_into_start_extraction_and_tail():
    out = run("bench_jobs.py", "--seconds", "30", "--repeat", "2", "--rounds", "1")
    for nj in (1, 2):
        line = next(x for x in out.splitlines() if x.startswith(f"  stage 3 --nj {nj}:"))
        wall, start, extract, tail = (float(x) for x in re.findall(r"([\d.]+) s wall = start ([\d.]+) \+ extract "
                                                                   r"([\d.]+) \+ tail ([\d.]+)", line)[0])
        assert abs(start + extract + tail - wall) < 0.02 and min(start, extract, tail) > 0, line
        assert len(line.split("(jobs' extraction: ")[1].split(", ")) == nj, line
    assert "ceiling, run.pl JOB=1:N of a plain loop: N=1" in out and "load average" in out
    assert out.strip().splitlines()[-1].startswith("speedup nj2/nj1: ")


def test_bench_jobs_reads_humanfriendly_spans_and_log_times():
    import bench_jobs
    assert bench_jobs.seconds("1 minute and 3.25 seconds") == 63.25
    assert bench_jobs.seconds("2 hours, 1 minute and 1 second") == 7261
    assert bench_jobs.stamp("2026-11-28 07:56:31,956 (extract:204) INFO: x") % 1 == pytest.approx(0.956)
