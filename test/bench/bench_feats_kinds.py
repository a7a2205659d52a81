"""Dumped, compressed or raw features: disk, error and load speed, side by side on speech.

  python test/bench/bench_feats_kinds.py [--data_dir data/train] [--num_utts 40]

Without --data_dir, --num_utts sentences are synthesised with espeak-ng (8 voices,
resampled to 16 kHz with sox), the audio of the mini_synth corpus. Each kind of
feature dir is made by the feature stage itself (bljust.bin.extract_feats), then:
  disk      bytes of the ark (float32 / Kaldi compressed) or of the 16-bit audio (raw)
  error     compressed vs float32, in log-mel units and in units of each bin's std
            (what the model sees after CMVN); raw vs dumped; on-device vs loader fbank
  load      utterances/s and audio seconds/s that one loader process delivers
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import kaldiio  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bljust.bin import extract_feats  # noqa: E402
from bljust.data.dataset import FeatureReader  # noqa: E402
from bljust.nets.frontend import FbankFrontend  # noqa: E402

VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
WORDS = ("the quick brown fox jumps over a lazy dog while seven bright stars shine above the quiet harbour "
         "and old ships rest near the stone wall").split()


def synthesise(d: str, n: int) -> str:
    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        sys.exit("espeak-ng and sox are needed without --data_dir (tools/setup.sh installs them)")
    os.makedirs(f"{d}/wav")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS, int(rng.integers(6, 16))))
        raw, out = f"{d}/wav/{i}.22k.wav", f"{d}/wav/u{i:03d}.wav"
        subprocess.run(["espeak-ng", "-v", VOICES[i % len(VOICES)], "-s", str(int(rng.integers(130, 190))),
                        "-w", raw, text], check=True)
        subprocess.run(["sox", raw, "-r", "16000", "-b", "16", out], check=True)
        os.unlink(raw)
        rows.append(f"u{i:03d} {out}\n")
    with open(f"{d}/wav.scp", "w") as f:
        f.writelines(rows)
    return d


def make(data: str, out: str, *extra: str) -> str:
    for argv in (["--data_dir", data, "--out_dir", f"{out}/data", "--name", "feats.1", *extra],
                 ["--merge", "--data_dir", data, "--out_dir", f"{out}/data", "--nj", "1", "--dest", out]):
        if extract_feats.main(argv) != 0:
            sys.exit(f"feature stage failed: {argv}")
    return out


def load_rate(reader: FeatureReader, keys) -> float:
    t0 = time.perf_counter()
    for k in keys:
        reader.load(k)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", help="a Kaldi data dir (default: synthesise speech)")
    p.add_argument("--num_utts", type=int, default=40)
    a = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data_dir or synthesise(f"{tmp}/speech", a.num_utts)
        fb, cm, raw = (make(data, f"{tmp}/{n}", *x) for n, x in
                       (("fbank", []), ("compressed", ["--compress", "true"]), ("raw", ["--feats_type", "raw"])))
        f32, c8 = kaldiio.load_scp(f"{fb}/feats.scp"), kaldiio.load_scp(f"{cm}/feats.scp")
        keys = sorted(f32)
        allf = np.concatenate([f32[k] for k in keys])
        err = np.concatenate([np.abs(c8[k] - f32[k]) for k in keys])
        std = allf.std(axis=0)
        frames, secs = allf.shape[0], sum(int(v) for v in FeatureReader(raw).num_samples.values()) / 16000
        b32 = os.path.getsize(f"{fb}/data/feats.1.ark")
        b8 = os.path.getsize(f"{cm}/data/feats.1.ark")
        audio = sum(os.path.getsize(v.split()[0]) for v in (ln.split(None, 1)[1] for ln in open(f"{raw}/wav.scp")))
        rr = FeatureReader(raw)
        raw_err = max(float(np.abs(rr.load(k) - f32[k]).max()) for k in keys)
        fe = FbankFrontend(rr.fbank_opts)
        waves = [torch.from_numpy(rr.waveform(k)) for k in keys]
        x = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
        dev, dl = fe(x, torch.tensor([len(w) for w in waves]))
        dev_err = max(float((dev[i, :int(dl[i])] - torch.from_numpy(f32[k])).abs().max()) for i, k in enumerate(keys))
        t32, t8, traw = (load_rate(FeatureReader(d), keys) for d in (fb, cm, raw))
        t0 = time.perf_counter()
        fe(x, torch.tensor([len(w) for w in waves]))
        tdev = time.perf_counter() - t0
        print(f"{len(keys)} utterances, {secs:.1f} s of audio, {frames} frames x {allf.shape[1]} bins")
        print(f"disk  float32 ark {b32} B ({b32 / frames:.0f} B/frame)   compressed ark {b8} B "
              f"({b8 / frames:.1f} B/frame, ratio {b8 / b32:.3f})   16-bit audio {audio} B ({audio / secs / 1000:.1f} kB/s)")
        print(f"error compressed vs float32: max {err.max():.4f}  mean {err.mean():.4f}  99.9% {np.quantile(err, 0.999):.4f}"
              f" (log-mel units; bins' std {std.min():.2f}..{std.max():.2f}); max in std units "
              f"{float((err / std).max()):.4f}")
        print(f"error raw (loader fbank) vs dumped float32: max {raw_err:.3g};  on-device frontend (CPU here) "
              f"vs dumped: max {dev_err:.3g}")
        print("load, one process: " + "   ".join(f"{n} {len(keys) / t:.0f} utt/s ({secs / t:.0f}x real time)" for n, t in
                                               (("float32 ark", t32), ("compressed ark", t8), ("raw+fbank", traw),
                                                ("frontend batch", tdev))))


if __name__ == "__main__":
    main()
