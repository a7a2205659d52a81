"""Stage 3 of asr.sh (fbank + CMVN through run.pl) with --nj 1 and --nj 2 on the same data.

  python test/bench/bench_jobs.py [--seconds 900] [--repeat 20] [--rounds 2]

Builds a scratch recipe (egs/TEMPLATE/asr1/setup.sh) with one set of speech-like WAVs
(each listed --repeat times in wav.scp, so that the extraction, about 1000x real time
per core, outweighs the few seconds each job spends starting python and torch),
then runs `./asr.sh --stage 3 --stop_stage 3 --force_stage 3 --nj N` for N = 1 and 2,
alternating, under path.sh's OMP_NUM_THREADS=1 (the setting that used to make run.pl
run its jobs one at a time). The best round of each is reported, because the machine may
be shared. Last line: `speedup nj2/nj1: X.XX` (ideal: the number of cores, up to 2).
On a machine busy with other login sessions, Linux's autogroup scheduling
(/proc/sys/kernel/sched_autogroup_enabled) gives this session one share of the CPUs
however many processes it runs, and the ratio stays near 1; the per-job lines then
still show the two jobs running side by side (each job's run.pl time spans the stage).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_feats import make_corpus  # noqa: E402


def stage3(recipe: str, nj: int) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    t = time.perf_counter()
    p = subprocess.run(["./asr.sh", "--train_set", "train", "--valid_set", "train", "--stage", "3",
                        "--stop_stage", "3", "--force_stage", "3", "--nj", str(nj)],
                       cwd=recipe, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"stage 3 with --nj {nj} failed:\n{p.stderr[-3000:]}")
    return wall, job_times(recipe, nj)


def job_times(recipe: str, nj: int) -> str:
    """Each job's run.pl accounting time and its own extraction time, from the job logs."""
    out = []
    for j in range(1, nj + 1):
        text = open(os.path.join(recipe, "dump/fbank/org/train/log", f"extract_feats.{j}.log")).read()
        acc = re.search(r"# Accounting: time=(\d+)", text)
        ext = re.search(r"of audio\) in ([^,]+), ", text)
        out.append(f"job {j}: {acc.group(1) if acc else '?'} s in run.pl, extraction {ext.group(1) if ext else '?'}")
    return "; ".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=900.0, help="audio to generate (before --repeat)")
    p.add_argument("--repeat", type=int, default=20, help="list each file this many times in wav.scp")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recipe = os.path.join(tmp, "bench", "asr1")
        subprocess.run([os.path.join(ROOT, "egs", "TEMPLATE", "asr1", "setup.sh"), recipe], check=True,
                       capture_output=True)
        data = os.path.join(recipe, "data", "train")
        os.makedirs(data)
        audio = make_corpus(data, args.seconds) * args.repeat
        wav = [line.split() for line in open(os.path.join(data, "wav.scp"))]
        with open(os.path.join(data, "wav.scp"), "w") as f:  # each file under --repeat ids: more work, same disk
            f.writelines(f"{u}-r{r:02d} {path}\n" for u, path in wav for r in range(args.repeat))
        utts = [line.split()[0] for line in open(os.path.join(data, "wav.scp"))]
        with open(os.path.join(data, "utt2spk"), "w") as f:
            f.writelines(f"{u} {u}\n" for u in utts)
        with open(os.path.join(data, "spk2utt"), "w") as f:
            f.writelines(f"{u} {u}\n" for u in utts)
        with open(os.path.join(data, "text"), "w") as f:
            f.writelines(f"{u} a b c\n" for u in utts)
        print(f"data: {len(utts)} utterances, {audio:.0f} s of audio; CPUs: {os.cpu_count()}; "
              f"OMP_NUM_THREADS=1 for every job", flush=True)
        best = {1: float("inf"), 2: float("inf")}
        for r in range(args.rounds):
            for nj in (1, 2):
                wall, jobs = stage3(recipe, nj)
                best[nj] = min(best[nj], wall)
                print(f"round {r + 1}: stage 3 --nj {nj}: {wall:.2f} s wall ({jobs})", flush=True)
        print(f"stage 3 wall time (best of {args.rounds}): --nj 1 {best[1]:.2f} s, --nj 2 {best[2]:.2f} s")
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} (2 jobs need 2 idle cores)")
        print(f"speedup nj2/nj1: {best[1] / best[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
