"""Cost of one BL-JUST joint step against the passes it is made of.

A joint step with K = 1 is one lower-level step (an unsupervised forward/backward
and an optimiser step) and one upper-level step (a supervised and an unsupervised
forward/backward, the penalised direction, an optimiser step). On the same
batches this prints the time of that step and of the three forward/backward
passes measured one by one; the last line is `overhead: X.XX`, the ratio of the
joint step to the sum of the passes (goal: at most 1.10). It also times the cheaper
variant (bilevel.reuse_lower_grad: the upper level reuses the lower level's ∇g, so
one unsupervised pass fewer) against its own two passes and against the exact step.

    tools/venv/bin/python test/bench/bench_bilevel.py [--config small|librispeech] [--unsup cpc|bestrq]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from bljust.nets.asr_model import ASRModel
from bljust.train.bilevel import PBGD, PBGDConfig, ParamGroups
from bljust.train.schedulers import build_optimizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZES = {
    # (encoder, batch, frames)
    "small": (dict(d_model=144, num_heads=4, ffn_dim=576, num_layers=4, kernel_size=15, dropout=0.1), 16, 400),
    "librispeech": (dict(d_model=512, num_heads=8, ffn_dim=2048, num_layers=7, kernel_size=31, dropout=0.1), 8, 800),
}


def make_unsup(name: str, model: ASRModel) -> torch.nn.Module:
    if name == "cpc":
        from bljust.losses.cpc import CPCLoss

        return CPCLoss(model.encoder.output_dim)
    from bljust.losses.bestrq import BestRQLoss

    return BestRQLoss(model.encoder.output_dim, model.input_dim, stack=4)


def batches(n: int, b: int, t: int, vocab: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        lens = torch.randint(t // 2, t + 1, (b,), generator=g)
        lens[0] = t
        feats = torch.randn(b, t, 80, generator=g)
        ys = torch.randint(1, vocab, (b, t // 16), generator=g)
        out.append((feats, lens, ys, torch.full((b,), t // 16)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="small", choices=sorted(SIZES))
    ap.add_argument("--unsup", default="cpc", choices=["cpc", "bestrq"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch", type=int, default=0, help="utterances per batch (default: the config's)")
    ap.add_argument("--frames", type=int, default=0, help="frames per utterance (default: the config's)")
    ap.add_argument("--amp", default="none", choices=["none", "bf16"], help="bf16 autocast (CUDA only)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    enc, b, t = SIZES[args.config]
    b, t = args.batch or b, args.frames or t
    use_amp = args.amp == "bf16" and device.type == "cuda"

    def amp():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_amp)
    torch.manual_seed(0)
    model = ASRModel(80, 256, encoder=enc).to(device)
    unsup = make_unsup(args.unsup, model).to(device)
    lab = [tuple(x.to(device) for x in bt) for bt in batches(args.repeats + 1, b, t, 256, 1)]
    unl = [tuple(x.to(device) for x in bt) for bt in batches(2 * (args.repeats + 1), b, t, 256, 2)]

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def sup_pass(i):
        feats, lens, ys, ylens = lab[i]
        with amp():
            loss, _ = model(feats, lens, ys, ylens)
        loss.backward()

    def unsup_pass(i):
        feats, lens, _, _ = unl[i]
        with amp():
            loss, _ = unsup(model, feats, lens)
        loss.backward()

    # the joint step, fed the same batches in the same order
    cursor = {"lab": 0, "unl": 0}

    def f():
        feats, lens, ys, ylens = lab[cursor["lab"]]
        cursor["lab"] += 1
        with amp():
            return model(feats, lens, ys, ylens)

    def g():
        feats, lens, _, _ = unl[cursor["unl"]]
        cursor["unl"] += 1
        with amp():
            return unsup(model, feats, lens)

    groups = ParamGroups(theta=list(model.encoder.parameters()), phi=list(model.ctc_head.parameters()),
                         eta=list(unsup.parameters()))
    opts = [build_optimizer(ps, {"name": "adamw", "lr": 1e-4})  # as the trainer builds them (fused on CUDA)
            for ps in (groups.lower(), groups.upper(), groups.finetune())]
    algo = PBGD(PBGDConfig(n1=0, n2=10 ** 6, k=1), groups, f, g, *opts)
    reuse = PBGD(PBGDConfig(n1=0, n2=10 ** 6, k=1, reuse_lower_grad=True), groups, f, g, *opts)

    params = list(model.parameters()) + list(unsup.parameters())

    def timed(fn):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t

    def joint_step(algo_, r):
        cursor.update(lab=r, unl=2 * r)  # the same batches as the passes
        algo_.step(0)

    passes, two_passes, joint, joint_reuse = [], [], [], []
    for r in range(args.repeats + 1):  # round 0 warms up
        for p in params:
            p.grad = None
        # the reuse variant's passes (one supervised, one unsupervised), then the exact step's third
        t_two = timed(lambda: (sup_pass(r), unsup_pass(2 * r)))
        t_all = t_two + timed(lambda: unsup_pass(2 * r + 1))
        for p in params:
            p.grad = None
        t_joint = timed(lambda: joint_step(algo, r))
        t_reuse = timed(lambda: joint_step(reuse, r))
        if r:
            passes.append(t_all)
            two_passes.append(t_two)
            joint.append(t_joint)
            joint_reuse.append(t_reuse)
    sp, sj, sr = statistics.median(passes), statistics.median(joint), statistics.median(joint_reuse)
    nparam = sum(p.numel() for p in model.parameters()) / 1e6
    print(f"device: {device} ({torch.get_num_threads()} threads), config {args.config} ({nparam:.1f}M params), "
          f"unsup {args.unsup}, batch {b} x {t} frames, amp {args.amp if use_amp else 'none'}")
    print(f"sum of passes (1 supervised + 2 unsupervised fwd/bwd): {sp * 1000:.1f} ms (median of {args.repeats})")
    print(f"BL-JUST joint step (K=1, exact):                    {sj * 1000:.1f} ms (median of {args.repeats})")
    print(f"BL-JUST joint step (K=1, reuse_lower_grad):         {sr * 1000:.1f} ms (median of {args.repeats}): "
          f"{sj / sr:.2f}x faster than exact; {sr / statistics.median(two_passes):.2f}x its own two passes "
          f"(1 supervised + 1 unsupervised: {statistics.median(two_passes) * 1000:.1f} ms)")
    print(f"overhead: {sj / sp:.2f}")


if __name__ == "__main__":
    main()
