"""Stage 3 of asr.sh (fbank + CMVN through run.pl) with --nj 1 and --nj 2 on the same data,
beside the machine's own ceiling for two run.pl jobs.

  python test/bench/bench_jobs.py [--seconds 900] [--repeat 100] [--rounds 3]

Builds a scratch recipe (egs/TEMPLATE/asr1/setup.sh) with one set of speech-like WAVs
(each listed --repeat times in wav.scp: more work on the same disk space), then runs
`./asr.sh --stage 3 --stop_stage 3 --nj N` for N = 1 and 2, alternating, each on an
empty dump/ with nothing left to write back to disk, under path.sh's OMP_NUM_THREADS=1.
Each round prints the load average first (other sessions on the machine take cores from
the jobs), then, per N, the wall time and where it went, read from the logs' timestamps:
  start    from the stage's start until the (last) job begins extracting: asr.sh, the
           data split, run.pl, python and the import of torch in each job;
  extract  the jobs' own extraction time (read, fbank, write the ark, CMVN stats);
  tail     from the end of extraction to the end of the stage: the jobs' tables, merge,
           the global CMVN and the stage marker;
and the CPU time of all its processes, which is much less sensitive to other load than
wall time: about the same for both N when the jobs do not get in each other's way
(memory bandwidth, caches, the page cache), higher for N=2 when they do.
Start and tail do not shrink with more jobs, so the speedup approaches the number of cores
only when the extraction outweighs them: about 5000x real time per core here, which is
why the default lists 900 s of audio 100 times (25 hours, 16 s of extraction on one core;
a real corpus is larger still). The ceiling runs `run.pl JOB=1:N` of a plain Python loop
with the same total work (one job's extraction, at most 8 s) split N ways, in the same
round: what the machine gives two jobs at that moment. The best round of each is
reported. Last lines: the ceiling's ratio and `speedup nj2/nj1: X.XX`.
On a machine busy with other login sessions, Linux's autogroup scheduling
(/proc/sys/kernel/sched_autogroup_enabled) gives this session one share of the CPUs
however many processes it runs: both the speedup and the ceiling then stay near 1.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_feats import make_corpus  # noqa: E402

LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", re.M)
# A pure-Python loop for the ceiling: iterations per second of one core, measured once.
LOOP = "import sys\nn = int(sys.argv[1])\nx = 0\nfor i in range(n):\n    x += i * i % 7\n"


def stamp(line: str) -> float:
    """Epoch seconds of a python logging timestamp (local time, milliseconds)."""
    t = datetime.datetime.strptime(LOG_TIME.match(line).group(1), "%Y-%m-%d %H:%M:%S,%f")
    return time.mktime(t.timetuple()) + t.microsecond / 1e6


def seconds(span: str) -> float:
    """humanfriendly's '1 minute and 3.2 seconds' in seconds."""
    unit = {"second": 1, "minute": 60, "hour": 3600}
    return sum(float(n) * unit[u] for n, u in re.findall(r"([\d.]+) (second|minute|hour)s?", span))


def stage3(recipe: str, nj: int) -> Tuple[float, Dict[str, float], List[float]]:
    # Every run starts as a first extraction does: no arks of the last run to free (replacing
    # a 3 GB ark frees its page cache inside the job, over a second) and none still being
    # written back to disk (the kernel's flusher would take a core from the jobs).
    shutil.rmtree(os.path.join(recipe, "dump"), ignore_errors=True)
    os.sync()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # path.sh puts the recipe's own bljust first
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    p = subprocess.run(["./asr.sh", "--train_set", "train", "--valid_set", "train", "--stage", "3",
                        "--stop_stage", "3", "--nj", str(nj)],
                       cwd=recipe, env=env, capture_output=True, text=True)
    t1 = time.time()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"stage 3 with --nj {nj} failed:\n{p.stderr[-3000:]}")
    ends, spans = [], []
    for j in range(1, nj + 1):
        text = open(os.path.join(recipe, "dump/fbank/org/train/log", f"extract_feats.{j}.log")).read()
        line = next(x for x in text.splitlines() if "of audio) in " in x)
        ends.append(stamp(line))
        spans.append(seconds(re.search(r"of audio\) in ([^,]+), ", line).group(1)))
    last_start = max(e - s for e, s in zip(ends, spans))
    parts = {"start": last_start - t0, "extract": max(ends) - last_start, "tail": t1 - max(ends),
             "cpu": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime}
    return t1 - t0, parts, spans


def loop_rate() -> float:
    n = 3_000_000
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", LOOP, str(n)], check=True)
    return n / (time.perf_counter() - t)


def ceiling(recipe: str, nj: int, iterations: int) -> float:
    """run.pl JOB=1:nj of the loop, each job 1/nj of the iterations; wall seconds."""
    with open(os.path.join(recipe, "loop.py"), "w") as f:
        f.write(LOOP)
    t = time.perf_counter()
    subprocess.run([os.path.join(ROOT, "utils", "run.pl"), f"JOB=1:{nj}", os.path.join(recipe, "loop.JOB.log"),
                    sys.executable, os.path.join(recipe, "loop.py"), str(iterations // nj)],
                   check=True, capture_output=True)
    return time.perf_counter() - t


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=900.0, help="audio to generate (before --repeat)")
    p.add_argument("--repeat", type=int, default=100, help="list each file this many times in wav.scp")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no_ceiling", action="store_true", help="skip the plain-loop ceiling")
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
        print(f"data: {len(utts)} utterances, {audio / 3600:.1f} h of audio; CPUs: {os.cpu_count()}; "
              f"OMP_NUM_THREADS=1 for every job", flush=True)
        best = {1: float("inf"), 2: float("inf")}
        peer = {1: float("inf"), 2: float("inf")}
        iterations = 0
        for r in range(args.rounds):
            print(f"round {r + 1}: load average {load()} (1, 5, 15 min)", flush=True)
            for nj in (1, 2):
                wall, parts, spans = stage3(recipe, nj)
                best[nj] = min(best[nj], wall)
                print(f"  stage 3 --nj {nj}: {wall:6.2f} s wall = start {parts['start']:.2f} + extract "
                      f"{parts['extract']:.2f} + tail {parts['tail']:.2f} (jobs' extraction: "
                      f"{', '.join(f'{s:.2f}' for s in spans)} s); {parts['cpu']:.2f} s of CPU", flush=True)
                if nj == 1 and not iterations:  # the ceiling's work: one job's extraction, at most 8 s
                    iterations = int(min(spans[0], 8.0) * loop_rate())
            if not args.no_ceiling:
                walls = {nj: ceiling(recipe, nj, iterations) for nj in (1, 2)}
                peer = {nj: min(peer[nj], walls[nj]) for nj in (1, 2)}
                print(f"  ceiling, run.pl JOB=1:N of a plain loop: N=1 {walls[1]:.2f} s, N=2 {walls[2]:.2f} s",
                      flush=True)
            print(f"  load average after the round: {load()}", flush=True)
        print(f"stage 3 wall time (best of {args.rounds}): --nj 1 {best[1]:.2f} s, --nj 2 {best[2]:.2f} s")
        if not args.no_ceiling:
            print(f"ceiling nj2/nj1 (plain loop through run.pl, same rounds): {peer[1] / peer[2]:.2f}")
        print(f"speedup nj2/nj1: {best[1] / best[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
