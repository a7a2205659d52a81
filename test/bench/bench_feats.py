"""Feature stage throughput (read audio, fbank, write ark/scp), ours vs kaldi-native-fbank.

  python test/bench/bench_feats.py [--seconds 100] [--rounds 5]

Both sides run in this one process with one thread, on the same WAV files, with the
same options (80 bins, 25/10 ms, povey, dither 0). Rounds alternate between the two
and the best round of each is reported, because the machine may be shared. The peer
needs kaldi-native-fbank (`tools/setup.sh --bench`); without it only our figure is printed.
Last line: `speedup: X.XX` (ours / kaldi-native-fbank, audio seconds per second).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import kaldiio  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402

from bljust.features.extract import extract_job  # noqa: E402
from bljust.features.fbank import FbankOptions  # noqa: E402

FS = 16000


def make_corpus(d: str, seconds: float) -> float:
    """Speech-like utterances of 2-8 s (harmonic tone with moving pitch, bursts, noise)."""
    rng = np.random.default_rng(0)
    lines, total, i = [], 0.0, 0
    while total < seconds:
        dur = float(rng.uniform(2.0, 8.0))
        n = int(dur * FS)
        t = np.arange(n) / FS
        f0 = 100 + 60 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t)
        phase = 2 * np.pi * np.cumsum(f0) / FS
        x = sum(np.sin(k * phase) / k for k in range(1, 15)) * 2500 * (np.sin(2 * np.pi * 3 * t) > -0.2)
        x = np.clip(x + rng.standard_normal(n) * 150, -32768, 32767).astype(np.int16)
        path = os.path.join(d, f"utt{i:04d}.wav")
        sf.write(path, x, FS, subtype="PCM_16")
        lines.append(f"utt{i:04d} {path}\n")
        total += n / FS
        i += 1
    with open(os.path.join(d, "wav.scp"), "w") as f:
        f.writelines(lines)
    return total


def run_ours(data: str, out: str) -> float:
    for name in os.listdir(out):
        os.unlink(os.path.join(out, name))
    t = time.perf_counter()
    extract_job(data, os.path.join(out, "feats.ark"), os.path.join(out, "feats.scp"), FbankOptions())
    return time.perf_counter() - t


def run_knf(knf, data: str, out: str) -> float:
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = FS
    opts.mel_opts.num_bins = 80
    opts.energy_floor = 1.0
    t = time.perf_counter()
    with open(os.path.join(data, "wav.scp")) as f, \
            kaldiio.WriteHelper(f"ark,scp:{out}/peer.ark,{out}/peer.scp") as writer:
        for line in f:
            key, path = line.split(maxsplit=1)
            x, _ = sf.read(path.strip(), dtype="int16")
            fb = knf.OnlineFbank(opts)
            fb.accept_waveform(FS, x.astype(np.float32))
            fb.input_finished()
            writer(key, np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)]))
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=300.0, help="audio to generate")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    logging.disable(logging.INFO)
    try:
        import kaldi_native_fbank as knf
    except ImportError:
        knf = None
        print("kaldi-native-fbank is not installed (tools/setup.sh --bench installs it): measuring ours only")
    with tempfile.TemporaryDirectory() as d:
        data, out = os.path.join(d, "data"), os.path.join(d, "out")
        os.makedirs(data)
        os.makedirs(out)
        audio = make_corpus(data, args.seconds)
        print(f"corpus: {audio:.1f} s of 16 kHz audio in {len(os.listdir(data)) - 1} WAV files")
        best = {"ours": float("inf"), "kaldi-native-fbank": float("inf")}
        for _ in range(args.rounds):
            best["ours"] = min(best["ours"], run_ours(data, out))
            if knf is not None:
                best["kaldi-native-fbank"] = min(best["kaldi-native-fbank"], run_knf(knf, data, out))
        if knf is not None:
            a = kaldiio.load_scp(os.path.join(out, "feats.scp"))
            b = kaldiio.load_scp(os.path.join(out, "peer.scp"))
            diff = max(float(np.abs(a[k] - b[k]).max()) for k in a)
            print(f"max abs difference between the two feature sets: {diff:.2e}")
        for name, t in best.items():
            if t < float("inf"):
                print(f"{name:20s} {audio / t:8.0f} audio-s/s per core  ({t * 1000:.0f} ms for {audio:.0f} s, "
                      f"best of {args.rounds})")
    if knf is None:
        print("speedup: n/a")
    else:
        print(f"speedup: {best['kaldi-native-fbank'] / best['ours']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
