"""The data stages at LibriSpeech scale: wall time and peak memory of each, beside the goal.

    tools/venv/bin/python test/bench/bench_scale.py [--utts 281241] [--nbpe 5000] [--keep DIR]

A synthetic LibriSpeech 960 h training directory (test/bench/synth_librispeech.py:
281,241 utterances, 2,338 speakers, mean 12.3 s over 1-35 s, ~34 words each;
wav.scp points at .flac files that do not exist, which no step here opens) goes
through what the recipe runs on it, each step as its own process, the way the
recipe starts it:

  validate    utils/validate_data_dir.sh --no-feats (Kaldi's checks; audio is never opened)
  split       utils/split_data.sh <dir> 32 (whole speakers) and --per-utt 32 (the feature stage's)
  subset      utils/subset_data_dir.sh <dir> 28539 <out> (evenly spread, train-clean-100's size)
  speed       utils/perturb_data_dir_speed.sh 0.9 and utils/combine_data.sh of the original
              and the perturbed copy (stage 2; twice the corpus: 562k utterances)
  tokenizer   python -m bljust.bin.train_tokenizer, unigram, 5000 pieces, as stage 5
  filter      python -m bljust.bin.filter_data --subsampling 4 --max_frames 3000 with the
              CTC length check against the new tokenizer (stage 4, plus token lengths)
  dataset     the trainer's start: ASRDataset (tables, every transcript tokenized) and
              the length bucketing of 281k utterances (batch_bins 120000) with an epoch order

Peak memory is each process's maximum resident set and CPU time its user + system time
(os.wait4's rusage): on a shared machine the CPU time is the steadier figure.
Goal: every step under 60 s and 2 GB. The last line is `worst: <step> X s, Y MiB`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import synth_librispeech as synth  # noqa: E402

GOAL_S, GOAL_MIB = 60.0, 2048.0


def timed(cmd: list, env: dict) -> tuple:
    """(wall seconds, CPU seconds, peak RSS in MiB, output) of one command; exits on failure with its output."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.stdout.write(out.decode(errors="replace")[-3000:])
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return dt, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.decode(errors="replace")


def dataset_step(data: str, token_dir: str, batch_bins: int) -> None:
    """Run in its own process by the 'dataset' step: what the trainer does before its first batch."""
    import kaldiio
    import numpy as np

    from bljust.data.batching import BucketBatchSampler, make_batches
    from bljust.data.dataset import ASRDataset
    from bljust.text.tokenizer import Tokenizer

    # feats.scp: every utterance points at one tiny matrix; only the first is read at start
    with kaldiio.WriteHelper(f"ark,scp:{data}/one.ark,{data}/one.scp") as w:
        w("x", np.zeros((10, 80), dtype=np.float32))
    spec = open(f"{data}/one.scp").read().split()[1]
    with open(f"{data}/utt2num_frames") as f, open(f"{data}/feats.scp", "w") as out:
        out.writelines(f"{line.split()[0]} {spec}\n" for line in f)
    t = time.perf_counter()
    ds = ASRDataset(data, Tokenizer.from_dir(token_dir))
    t_ds = time.perf_counter() - t
    t = time.perf_counter()
    batches = make_batches(ds.lengths, batch_bins, 256)
    sampler = BucketBatchSampler(batches, seed=0)
    n = sum(len(b) for b in sampler)
    t_b = time.perf_counter() - t
    padded = sum(max(ds.lengths[k] for k in b) * len(b) for b in batches)
    print(f"  ASRDataset {t_ds:.1f} s ({len(ds)} utterances, {sum(map(len, ds.ids.values())):,} tokens); "
          f"make_batches + epoch order {t_b:.1f} s ({len(batches)} batches, {n} utterances, "
          f"padding {1 - sum(ds.lengths.values()) / padded:.2%} of the padded frames)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utts", type=int, default=synth.UTTS)
    ap.add_argument("--nbpe", type=int, default=5000)
    ap.add_argument("--nj", type=int, default=32)
    ap.add_argument("--keep", default="", help="make the corpus here and keep it (default: a temp dir)")
    ap.add_argument("--dataset_step", nargs=3, metavar=("DATA", "TOKEN_DIR", "BATCH_BINS"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.dataset_step:
        dataset_step(a.dataset_step[0], a.dataset_step[1], int(a.dataset_step[2]))
        return 0
    py = sys.executable
    env = dict(os.environ, PATH=os.path.dirname(py) + os.pathsep + os.environ.get("PATH", ""),
               OMP_NUM_THREADS="1", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    work = a.keep or tempfile.mkdtemp(prefix="bench_scale.")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "train_960")
    try:
        t = time.perf_counter()
        frames = synth.write_data_dir(data, a.utts)
        hours = sum(frames.values()) / 360000
        size = sum(os.path.getsize(os.path.join(data, n)) for n in os.listdir(data))
        print(f"corpus: {len(frames):,} utterances, {hours:.1f} h of frames, {size / 2**20:.0f} MiB of tables in {data} "
              f"(made in {time.perf_counter() - t:.0f} s); {os.cpu_count()} CPUs, 1 thread per step")
        tok = os.path.join(work, "token_list")
        steps = [
            ("validate", ["bash", "utils/validate_data_dir.sh", "--no-feats", data]),
            (f"split {a.nj} (speakers)", ["bash", "utils/split_data.sh", data, str(a.nj)]),
            (f"split {a.nj} (--per-utt)", ["bash", "utils/split_data.sh", "--per-utt", data, str(a.nj)]),
            ("subset 28539", ["bash", "utils/subset_data_dir.sh", data, "28539", os.path.join(work, "subset")]),
            ("speed perturb 0.9", ["bash", "utils/perturb_data_dir_speed.sh", "0.9", data, f"{data}_sp0.9"]),
            ("combine (x1.0 + x0.9)", ["bash", "utils/combine_data.sh", f"{data}_sp", data, f"{data}_sp0.9"]),
            (f"tokenizer (unigram {a.nbpe})", [py, "-m", "bljust.bin.train_tokenizer", "--text", f"{data}/text",
                                               "--token_type", "bpe", "--bpemode", "unigram", "--nbpe",
                                               str(a.nbpe), "--out_dir", tok]),
            ("filter (+ CTC lengths)", [py, "-m", "bljust.bin.filter_data", "--in_dir", data, "--out_dir",
                                        os.path.join(work, "filtered"), "--subsampling", "4", "--max_frames", "3000",
                                        "--token_dir", tok]),
            ("dataset + batching", [py, os.path.abspath(__file__), "--dataset_step", data, tok, "120000"]),
        ]
        rows = []
        for name, cmd in steps:
            dt, cpu, mib, out = timed(cmd, env)
            ok = dt < GOAL_S and mib < GOAL_MIB
            rows.append((name, dt, mib))
            print(f"{name:26s} {dt:7.1f} s (cpu {cpu:5.1f} s)  {mib:7.0f} MiB  {'ok' if ok else 'MISSES the goal'} "
                  f"(goal < {GOAL_S:.0f} s, < {GOAL_MIB / 1024:.0f} GB)", flush=True)
            sys.stdout.writelines(line + "\n" for line in out.splitlines() if line.startswith("  "))
        kept = sum(1 for _ in open(os.path.join(work, "filtered", "utt2spk")))
        print(f"filter kept {kept:,} of {len(frames):,} utterances")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    name, dt, _ = max(rows, key=lambda r: r[1] / GOAL_S)
    _, _, mib = max(rows, key=lambda r: r[2])
    print(f"worst: {name} {dt:.1f} s; largest memory {mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
