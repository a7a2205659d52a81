"""Frames per second that the training data pipeline delivers to the training step, with
0, 2 and 4 DataLoader workers, beside the frames per second one GPU consumes.

    tools/venv/bin/python test/bench/bench_loader.py [--utts 400] [--batches 40] [--workers 0 2 4]

The pipeline is the BL-JUST trainer's (a stream of the LibriSpeech recipe's
train_bljust.yaml: batch_bins 120000, max_batch_size 256): ASRDataset reads each
utterance's fbank from the ark through feats.scp, length-bucketed batches in the
seeded epoch order, collate pads them, pin_memory and the copy to the device where
there is a CUDA device (the supervised trainer's DataLoader does the same steps).
SpecAugment is not in the loader: it runs inside the model on the device
(ASRModel.forward), so it costs GPU time, not loader time.

The corpus is made here: LibriSpeech-like durations (mean 12.3 s, 1-35 s), random
80-dim fbank written as a float32 ark and as a Kaldi compressed ark (kaldiio,
compression method 2, as `compress=true`). The arks are read from the page cache
(they were just written), so disk or network-filesystem bandwidth is not part of it.

Raw input (audio read and fbank computed in the loader) is not timed through the
loader here; the two steps it adds are, in one process: decoding FLAC (the corpus's
format, soundfile) and bljust's fbank on the CPU, on speech-like synthetic audio.

The GPU's appetite: test/gpu/RESULTS.md's measured training frames/s of the
LibriSpeech Conformer when that file has one, else the goal of 40% model FLOPs
utilisation of an H100 (989 dense bf16 TFLOP/s) divided by the model FLOPs per
input frame (the formula is printed). Goal: the loader with the workers of a GPU node
delivers at least 2x that. The last line is `loader/GPU: X.XX` at the largest worker count.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import tempfile
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import kaldiio  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synth_librispeech as synth  # noqa: E402

from bljust.data.dataset import ASRDataset  # noqa: E402
from bljust.train.bilevel_trainer import BatchStream  # noqa: E402
from bljust.train.config import load_config  # noqa: E402
from bljust.train.distributed import DistInfo  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONF = os.path.join(ROOT, "egs", "librispeech", "asr1", "conf", "train_bljust.yaml")
RESULTS = os.path.join(ROOT, "test", "gpu", "RESULTS.md")
H100_BF16 = 989e12
MFU_GOAL = 0.40
VOCAB = 5000  # the recipe's --nbpe
NODE = "an 8x H100 node with 112 cores (DGX H100): 14 per GPU"
CORES_PER_GPU = 14


class Letters:
    """A stand-in tokenizer: the loader carries token ids, their values do not matter here."""

    def encode(self, text: str) -> list:
        return [2 + (ord(c) % 26) for c in text if c != " "]


def model_flops_per_frame(conf: dict, mean_seconds: float) -> tuple:
    """(analytic FLOPs per input frame, formula text, weights used per output frame by part)
    for the Conformer-CTC of `conf`."""
    e = conf["encoder"]
    d, f, n_layers, k = int(e["d_model"]), int(e["ffn_dim"]), int(e["num_layers"]), int(e["kernel_size"])
    rate, idim, ch = int(e.get("subsampling", 4)), 80, int(e["d_model"])
    if rate != 4:
        raise SystemExit(f"{CONF}: the formula here is for 4x subsampling, got {rate}")
    f1 = (idim - 3) // 2 + 1
    f2 = (f1 - 3) // 2 + 1
    block = 2 * 2 * d * f + 4 * d * d + 3 * d * d + k * d  # 2 FFNs, q/k/v/out, pointwise convs, depthwise
    sub = 2 * f1 * 9 * ch + f2 * 9 * ch * ch + f2 * ch * d  # conv2d 3x3/2 twice + linear, per output frame
    head = d * VOCAB
    p = n_layers * block + sub + head
    t_out = mean_seconds * 100 / rate
    per_out = 6 * p + 3 * n_layers * 4 * t_out * d
    text = (f"FLOPs per input frame = [6 x P + 3 x L x 4 x T' x d] / 4, where P = weights used per output frame = "
            f"L x (4 d f + 7 d^2 + K d) + subsampling (2 F1 9 C + F2 9 C^2 + F2 C d) + d V = {p / 1e6:.1f}M "
            f"(d={d}, f={f}, L={n_layers}, K={k}, C={ch}, F1={f1}, F2={f2}, V={VOCAB}); "
            f"T' = {t_out:.0f} output frames ({mean_seconds:.1f} s); 6 = 2 (multiply-add) x 3 (forward + backward)")
    return per_out / rate, text, {"blocks": n_layers * block, "subsampling": sub, "head": head}


def counted_flops_per_frame(conf: dict, frames: int) -> float:
    """torch.utils.flop_counter's count of forward + backward on the real model (meta tensors)."""
    from torch.utils.flop_counter import FlopCounterMode

    from bljust.nets.asr_model import build_asr_model

    with torch.device("meta"):
        model = build_asr_model(conf, 80, VOCAB).train()
        x, lens = torch.zeros(1, frames, 80), torch.tensor([frames])
    with FlopCounterMode(display=False) as fc:
        enc, _ = model.encoder(x, lens)
        model.ctc_head(enc).sum().backward()
    return fc.get_total_flops() / frames


def measured_appetite() -> tuple:
    """(frames/s, where from) of the LibriSpeech Conformer's training on one GPU, the largest
    of ours that test/gpu/RESULTS.md reports for bench_train.py; (None, "") when none is."""
    if not os.path.isfile(RESULTS):
        return None, ""
    best = None
    for line in open(RESULTS, encoding="utf-8"):
        if "bench_train" in line:  # the table row of the training benchmark
            for m in re.finditer(r"ours ([\d,]+) frames/s", line):
                best = max(best or 0.0, float(m.group(1).replace(",", "")))
        m = re.search(r"librispeech_conformer\s+bljust\b.*?([\d,.]+)\s*frames/s", line)  # bench_train's own output
        if m:
            best = max(best or 0.0, float(m.group(1).replace(",", "")))
    return best, "the largest training figure of ours in " + os.path.relpath(RESULTS, ROOT)


def make_corpus(d: str, n: int) -> dict:
    """Data dirs `float32` and `compressed` holding the same random fbank."""
    data = os.path.join(d, "float32")
    frames = synth.write_data_dir(data, n, speakers=max(1, n // 120))
    rng = np.random.default_rng(0)
    comp = os.path.join(d, "compressed")
    os.makedirs(comp)
    for name in ("text", "utt2spk", "spk2utt", "utt2num_frames"):
        os.link(os.path.join(data, name), os.path.join(comp, name))
    with kaldiio.WriteHelper(f"ark,scp:{data}/feats.ark,{data}/feats.scp") as w32, \
            kaldiio.WriteHelper(f"ark,scp:{comp}/feats.ark,{comp}/feats.scp", compression_method=2) as wc:
        for key, t in frames.items():
            x = (rng.standard_normal((t, 80), dtype=np.float32) * 3 + 10).astype(np.float32)
            w32(key, x)
            wc(key, x)
    return frames


def raw_audio_rates(d: str, seconds: float) -> dict:
    """Audio seconds per second of one process for the two steps a raw-input loader adds:
    decoding the corpus's FLAC (soundfile) and computing fbank on the CPU (bljust's Fbank)."""
    import soundfile as sf

    from bench_feats import make_corpus
    from bljust.features.fbank import Fbank

    wav_dir = os.path.join(d, "wav")
    os.makedirs(wav_dir)
    audio = make_corpus(wav_dir, seconds)  # speech-like: harmonics with moving pitch, pauses, noise
    flacs = []
    for name in sorted(os.listdir(wav_dir)):
        if name.endswith(".wav"):
            x, fs = sf.read(os.path.join(wav_dir, name), dtype="int16")
            flacs.append(os.path.join(wav_dir, name[:-4] + ".flac"))
            sf.write(flacs[-1], x, fs, subtype="PCM_16")
    fbank = Fbank()
    best = {"flac": float("inf"), "fbank": float("inf")}
    for _ in range(3):  # best of 3: the machine may be shared
        t, waves = time.perf_counter(), [sf.read(f, dtype="int16")[0] for f in flacs]
        best["flac"] = min(best["flac"], time.perf_counter() - t)
        t = time.perf_counter()
        for i, w in enumerate(waves):
            fbank(w.astype(np.float32), f"u{i}")
        best["fbank"] = min(best["fbank"], time.perf_counter() - t)
    return {k: audio / v for k, v in best.items()}


def run(ds: ASRDataset, conf: dict, workers: int, n_batches: int, device: torch.device) -> dict:
    stream = BatchStream(ds, ds.lengths, conf["batching"], seed=0, dist=DistInfo(), num_workers=workers,
                         pin_memory=device.type == "cuda")
    t0 = time.perf_counter()
    stream.next()  # workers start and fill their prefetch queue
    t1 = time.perf_counter()
    frames = padded = 0
    for _ in range(n_batches):
        b = stream.next()
        feats = b["feats"].to(device, non_blocking=True)
        frames += int(b["feat_lens"].sum())
        padded += feats.shape[0] * feats.shape[1]
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t1
    stream._it = None  # shuts the workers down
    return {"frames_s": frames / dt, "start_s": t1 - t0, "padding": 1 - frames / padded, "batches": n_batches}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--utts", type=int, default=400, help="utterances in the synthetic corpus")
    ap.add_argument("--batches", type=int, default=40, help="batches timed per row (after the first)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    ap.add_argument("--raw_seconds", type=float, default=120.0, help="audio for the raw-input rates")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # more workers than CPUs: meant
    conf = load_config(CONF, [])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mean_s = float(synth.durations(synth.UTTS).mean())
    flops, formula, _ = model_flops_per_frame(conf, mean_s)
    counted = counted_flops_per_frame(conf, int(round(mean_s * 100)))
    goal_appetite = MFU_GOAL * H100_BF16 / min(flops, counted)
    appetite, source = measured_appetite()
    print(f"model: {os.path.relpath(CONF, ROOT)} (Conformer-CTC {conf['encoder']['d_model']}x"
          f"{conf['encoder']['num_layers']}, V={VOCAB})")
    print(formula)
    print(f"  = {flops / 1e6:.1f} MFLOP per input frame; torch.utils.flop_counter on the model's forward and "
          f"backward: {counted / 1e6:.1f} MFLOP (the smaller is used: it asks more of the loader)")
    print(f"one H100 at the {MFU_GOAL:.0%} MFU goal ({H100_BF16 / 1e12:.0f} TFLOP/s dense bf16): "
          f"{goal_appetite:,.0f} frames/s ({goal_appetite / 100:,.0f} s of audio per second)")
    if appetite:
        print(f"one GPU as measured ({source}): {appetite:,.0f} frames/s "
              f"({appetite * counted / H100_BF16:.1%} MFU by torch's count); the appetite below")
    else:
        appetite = goal_appetite
        print(f"no measured GPU training throughput in {os.path.relpath(RESULTS, ROOT)}: "
              "the GPU's appetite is the goal's")
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as d_raw:
        t = time.perf_counter()
        frames = make_corpus(d, a.utts)
        total = sum(frames.values())
        sizes = {n: os.path.getsize(os.path.join(d, n, "feats.ark")) for n in ("float32", "compressed")}
        print(f"corpus: {a.utts} utterances, {total / 360000:.2f} h ({total:,} frames), float32 ark "
              f"{sizes['float32'] / 2**20:.1f} MiB, compressed {sizes['compressed'] / 2**20:.1f} MiB "
              f"(1/{sizes['float32'] / sizes['compressed']:.2f}) "
              f"(made in {time.perf_counter() - t:.0f} s); batch_bins {conf['batching']['batch_bins']}, "
              f"{os.cpu_count()} CPUs here, torch {torch.__version__}, device {device.type}")
        print("SpecAugment runs in the model on the device (ASRModel.forward), not in the loader")
        rows = []
        for name in ("float32", "compressed"):
            ds = ASRDataset(os.path.join(d, name), Letters())
            for w in a.workers:
                r = run(ds, conf, w, a.batches, device)
                rows.append((name, w, r))
                print(f"{name + ' ark':16s} workers {w}: {r['frames_s']:12,.0f} frames/s "
                      f"({r['frames_s'] / 100:9,.0f} audio-s/s)  = {r['frames_s'] / appetite:5.2f}x one GPU's "
                      f"appetite  (first batch after {r['start_s']:.2f} s, padding {r['padding']:.1%}, "
                      f"{r['batches']} batches)", flush=True)
    raw = raw_audio_rates(d_raw, a.raw_seconds)
    both = 1 / (1 / raw["flac"] + 1 / raw["fbank"])
    print(f"raw audio, one process, not through the loader (composed of two measured steps): FLAC decoding "
          f"{raw['flac']:,.0f} audio-s/s, fbank on the CPU {raw['fbank']:,.0f} audio-s/s; both "
          f"{both * 100:,.0f} frames/s = {both * 100 / appetite:.2f}x one GPU's appetite; FLAC alone (fbank on the "
          f"device) {raw['flac'] * 100:,.0f} frames/s = {raw['flac'] * 100 / appetite:.2f}x")
    print(f"goal: >= 2x one GPU's appetite = {2 * appetite:,.0f} frames/s with the workers of {NODE}")
    for name in ("float32", "compressed"):
        one_core = next((r["frames_s"] for n, w, r in rows if n == name and w == 0), None)
        if one_core:
            need = math.ceil(2 * appetite / one_core)
            print(f"{name + ' ark':16s} one process reads {one_core:,.0f} frames/s: 2x the appetite needs about "
                  f"{need} workers if they scale linearly ({'within' if need <= CORES_PER_GPU else 'beyond'} "
                  f"{CORES_PER_GPU} cores per GPU)")
    for name, rate in (("raw (CPU fbank)", both * 100), ("raw (GPU fbank)", raw["flac"] * 100)):
        need = math.ceil(2 * appetite / rate)
        print(f"{name:16s} one process {rate:,.0f} frames/s: 2x the appetite needs about {need} workers "
              f"({'within' if need <= CORES_PER_GPU else 'beyond'} {CORES_PER_GPU} cores per GPU)")
    last = max(a.workers)
    best = next(r["frames_s"] for n, w, r in rows if n == "float32" and w == last)
    print(f"loader/GPU: {best / appetite:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
