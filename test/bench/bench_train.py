"""Training throughput of the Conformer-CTC configs: our encoder vs torchaudio.models.Conformer.

    tools/venv/bin/python test/bench/bench_train.py [--configs small,librispeech_conformer] [--steps 3]
        [--batch B --frames T] [--compile] [--channels_last] [--profile N]

Times full training steps (forward, CTC loss, backward, AdamW) on random 80-dim
features and prints frames/s for each config and encoder implementation, plus the
model FLOPs per step (torch.utils.flop_counter) and, on GPU, the model FLOPs
utilisation against the device's dense bf16 peak. The last line sums it up.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from bljust.nets.asr_model import build_asr_model
from bljust.train.config import load_config

CONF_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "egs", "TEMPLATE", "asr1", "conf", "tuning")
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense tensor-core peaks


def batch_shape(name: str, device: str, batch: int = 0, frames: int = 0) -> tuple:
    if batch and frames:
        return batch, frames
    if device == "cuda":
        return (32, 1500) if "small" in name else (16, 1500)
    return (8, 500) if "small" in name else (4, 500)


def setup(name: str, impl: str, device: str, amp: str, shape: tuple = (0, 0), compile_: bool = False,
          channels_last: bool = False):
    """Returns (step function, stats) for one config and encoder implementation."""
    conf = load_config(os.path.join(CONF_DIR, f"train_{name}.yaml"), ["--encoder.impl", impl])
    torch.manual_seed(0)
    model = build_asr_model(conf, 80, 256).to(device).train()
    if channels_last:  # the subsampling's Conv2d weights NHWC: cuDNN then runs NHWC kernels, no transposes
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    b, t = batch_shape(name, device, *shape)
    feats = torch.randn(b, t, 80, device=device)
    lens = torch.full((b,), t, device=device).long()
    lens[-1] = int(t * 0.8)
    ys = torch.randint(1, 256, (b, t // 20), device=device)
    ylens = torch.full((b,), t // 20, device=device).long()
    use_amp = amp == "bf16" and device == "cuda"

    net = model

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=use_amp):
            loss, _ = net(feats, lens, ys, ylens)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()

    with FlopCounterMode(display=False) as fc:
        step()  # also the warm-up
    if compile_:  # FLOPs are counted on the eager model above; the compiled one is timed
        t0 = time.perf_counter()
        net = torch.compile(model)
        step()
        step()
        print(f"# {name}/{impl}: torch.compile warm-up {time.perf_counter() - t0:.1f} s", flush=True)
    return step, {"params": sum(p.numel() for p in model.parameters()), "frames": float(lens.sum()), "batch": b, "t": t,
                  "flops": fc.get_total_flops()}


def bench(name: str, impls: list, steps: int, device: str, amp: str, shape: tuple = (0, 0),
          compile_: bool = False, channels_last: bool = False, profile: int = 0) -> dict:
    """Alternates the implementations step by step and keeps each one's fastest step,
    so load from other processes on a shared machine hits both alike. profile: print the
    `profile` kernels (operators on a CPU) of most self time over two steps of the first one."""
    runs = {impl: setup(name, impl, device, amp, shape, compile_, channels_last) for impl in impls}
    best = {impl: float("inf") for impl in impls}
    for _ in range(steps):
        for impl, (step, _) in runs.items():
            t0 = time.perf_counter()
            step()
            best[impl] = min(best[impl], time.perf_counter() - t0)
    if profile:
        impl, (step, _) = next(iter(runs.items()))
        key = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
        acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if device == "cuda" else [])
        with torch.profiler.profile(activities=acts) as prof:
            step()
            step()
        print(f"# profile of {name}/{impl}, two steps, by {key}:")
        print(prof.key_averages().table(sort_by=key, row_limit=profile, max_name_column_width=60), flush=True)
    out = {}
    for impl, (_, st) in runs.items():
        dt = best[impl]
        out[impl] = dict(st, step_s=dt, frames_s=st["frames"] / dt, flops_s=st["flops"] / dt)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="small,librispeech_conformer")
    ap.add_argument("--impls", default="bljust,torchaudio")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--amp", default="bf16", choices=["none", "bf16"])
    ap.add_argument("--batch", type=int, default=0, help="utterances per batch (default: by config and device)")
    ap.add_argument("--frames", type=int, default=0, help="input frames per utterance (with --batch)")
    ap.add_argument("--compile", action="store_true", help="time the torch.compile'd model")
    ap.add_argument("--channels_last", action="store_true", help="4-D weights (the Conv2d subsampling) channels-last")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="print the N kernels of most self time")
    a = ap.parse_args(argv)
    peak = None
    if a.device == "cuda":
        gpu = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_BF16.items() if k in gpu), None)
        print(f"device: {gpu}, amp {a.amp}")
    else:
        print(f"device: cpu, {torch.get_num_threads()} threads (shared machine: figures are indicative)")
    summary = []
    for name in a.configs.split(","):
        row = bench(name, a.impls.split(","), a.steps, a.device, a.amp, (a.batch, a.frames), a.compile,
                    a.channels_last, a.profile)
        tags = ", ".join(t for t, on in (("compiled", a.compile), ("channels_last", a.channels_last)) if on)
        for impl, r in row.items():
            mfu = f"  MFU {100 * r['flops_s'] / peak:.1f}%" if peak and a.amp == "bf16" else ""
            print(f"{name:24s} {impl:10s} batch {int(r['batch'])}x{int(r['t'])}{f' [{tags}]' if tags else ''}  "
                  f"{r['params'] / 1e6:6.1f}M params  {r['step_s'] * 1000:8.1f} ms/step  "
                  f"{r['frames_s']:10.0f} frames/s  {r['flops'] / 1e9:8.1f} GFLOP/step  "
                  f"{r['flops_s'] / 1e12:6.2f} TFLOP/s{mfu}")
        if "bljust" in row and "torchaudio" in row:
            summary.append(f"{name}: {row['bljust']['frames_s']:.0f} vs torchaudio {row['torchaudio']['frames_s']:.0f} frames/s "
                           f"(x{row['bljust']['frames_s'] / row['torchaudio']['frames_s']:.2f})")
    print("train throughput (ours vs torchaudio Conformer), " + "; ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
