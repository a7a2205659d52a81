"""The GPU check: correctness and speed of bljust's CUDA path in one run, one block of figures.

    tools/venv/bin/python test/gpu/check.py [--quick] [--only softdtw,amp,...] [--bench train,...] [--report FILE]

Run it through test/gpu/check.sh on a machine with one NVIDIA GPU (about 8 minutes with
--quick on an H100/H200). Without a GPU it runs the parts that need none (the CPU side of every
comparison) and says which parts it skipped. Parts:

  softdtw   soft-DTW value and gradient on CUDA (fused Triton kernels and the torch path)
            against the CPU float64 DP, unequal lengths and a band
  amp       the LibriSpeech Conformer-CTC: bf16 autocast forward/backward against fp32
  train     30 supervised steps and 30 BL-JUST steps (explore, joint, fine-tune) on the GPU
  resume    SIGKILL mid-run and resume on the GPU, compared with an uninterrupted run
  ddp       NCCL DDP world size 1 gives the single-process update; 2 ranks on one GPU
            (NCCL where it allows, else gloo over CUDA tensors) match 1 rank with 2x accumulation
  bench     bench_train.py (frames/s, MFU; eager, channels-last, compiled; a kernel profile),
            bench_bilevel.py (joint-step overhead), bench_softdtw.py (ours vs pysdtw);
            --bench train,softdtw picks some
  loader    bench_loader.py with 0-8 workers: frames/s delivered to the GPU beside its appetite
  cudatests the suite's tests that need a CUDA device (CI has none)

Every part prints `PASS`/`FAIL`/`SKIP` with its figures; the last block repeats them all.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "test", "train"))
sys.path.insert(0, os.path.join(ROOT, "test", "losses"))

from train_synth import make_data_dir, run_driver, tiny_config  # noqa: E402

CUDA = torch.cuda.is_available()
RESULTS: list = []


def report(part: str, status: str, figures: str) -> None:
    RESULTS.append((part, status, figures))
    print(f"[{part}] {status}: {figures}", flush=True)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


# ----------------------------------------------------------------------------- soft-DTW
def part_softdtw(quick: bool) -> None:
    from bljust.losses import softdtw_triton
    from bljust.losses.softdtw import soft_dtw_divergence

    g = torch.Generator().manual_seed(0)
    b, n, m, d = 4, 96, 80, 32
    x = torch.nn.functional.normalize(torch.randn(b, n, d, generator=g, dtype=torch.float64), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(b, m, d, generator=g, dtype=torch.float64), dim=-1)
    xl, yl = torch.tensor([96, 70, 50, 33]), torch.tensor([80, 80, 41, 60])

    def run(dev, dtype, impl, band, swap):
        a, b_, al, bl = (y, x, yl, xl) if swap else (x, y, xl, yl)
        xx = a.to(dev, dtype).requires_grad_()
        yy = b_.to(dev, dtype).requires_grad_()
        impl, _, layout = impl.partition("-")  # triton-rows: the fused kernels with the row-major tables
        with softdtw_triton.using(layout or softdtw_triton.LAYOUT):
            v = soft_dtw_divergence(xx, yy, al.to(dev), bl.to(dev), gamma=0.1, bandwidth=band, impl=impl)
        gx, gy = torch.autograd.grad((v * torch.arange(1, b + 1, device=dev, dtype=dtype)).sum(), (xx, yy))
        return [t.detach().cpu() for t in (v, gx, gy)]

    if not CUDA:
        report("softdtw", "SKIP", "no CUDA device (the CPU paths are covered by test/losses)")
        return
    worst = 0.0
    rows = []
    impls = ["torch"] + ([f"triton-{lay}" for lay in softdtw_triton.LAYOUTS]
                         if softdtw_triton.available(torch.device("cuda")) else [])
    # x (96 frames) before y (80), then y before x: the skewed tables run the first case transposed
    for band, swap in ((None, False), (8.0, False), (None, True)):
        ref = run("cpu", torch.float64, "torch", band, swap)
        for impl in impls:
            for dtype in (torch.float64, torch.float32):
                got = run("cuda", dtype, impl, band, swap)
                errs = [rel(a, r) for a, r in zip(got, ref)]
                # Triton's float64 exp/log on the GPU are not correctly rounded (~1e-11 relative
                # per call here): a looser float64 bound for the fused kernels
                tol = (1e-6 if impl.startswith("triton") else 1e-9) if dtype == torch.float64 else 5e-4
                worst = max(worst, max(errs) / tol)
                rows.append(f"{impl}/{str(dtype)[6:]}/band={band}{'/swapped' if swap else ''}: "
                            f"rel err value {errs[0]:.1e} "
                            f"grad {max(errs[1:]):.1e}")
    status = "PASS" if worst <= 1.0 else "FAIL"
    report("softdtw", status, "CUDA vs CPU float64, relative L2 error (tolerance float64 1e-9 torch path, "
           "1e-6 fused; float32 5e-4, which the torch path needs too): " + "; ".join(rows))


# ----------------------------------------------------------------------------- bf16 vs fp32
def part_amp(quick: bool) -> None:
    if not CUDA:
        report("amp", "SKIP", "no CUDA device")
        return
    from bljust.nets.asr_model import build_asr_model
    from bljust.train.config import load_config

    conf = load_config(os.path.join(ROOT, "egs/TEMPLATE/asr1/conf/tuning/train_librispeech_conformer.yaml"), [])
    conf["encoder"]["dropout"] = 0.0
    conf["specaug"] = None
    torch.manual_seed(0)
    model = build_asr_model(conf, 80, 256).cuda().train()
    b, t = 8, 1000
    g = torch.Generator(device="cuda").manual_seed(1)
    feats = torch.randn(b, t, 80, device="cuda", generator=g)
    lens = torch.full((b,), t, device="cuda")
    lens[1:] -= torch.arange(1, b, device="cuda") * 50
    ys = torch.randint(1, 256, (b, t // 25), device="cuda", generator=g)
    ylens = torch.full((b,), t // 25, device="cuda")

    def grads(amp):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(2)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss, _ = model(feats, lens, ys, ylens)
        loss.backward()
        return float(loss), torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])

    l32, g32 = grads(False)
    l16, g16 = grads(True)
    lerr, gerr = abs(l16 - l32) / abs(l32), rel(g16, g32)
    cos = float(torch.nn.functional.cosine_similarity(g16, g32, dim=0))
    ok = lerr < 1e-2 and gerr < 0.1 and cos > 0.995
    report("amp", "PASS" if ok else "FAIL",
           f"LibriSpeech 512x7 Conformer, batch {b}x{t}: loss fp32 {l32:.4f} bf16 {l16:.4f} (rel {lerr:.1e}, "
           f"tolerance 1e-2); gradient rel L2 err {gerr:.2e} (tolerance 0.1), cosine {cos:.5f} (> 0.995)")


# ----------------------------------------------------------------------------- training
def _data(tmp: str) -> str:
    if not os.path.exists(f"{tmp}/train"):
        make_data_dir(f"{tmp}/train", 48)
        make_data_dir(f"{tmp}/dev", 6, seed=1)
        make_data_dir(f"{tmp}/unlab", 48, seed=2)
    return tmp


def _sup_conf(tmp: str, out: str, **trainer) -> dict:
    conf = tiny_config(tmp, out, **trainer)
    conf.update(ngpu=1 if CUDA else 0)
    conf["trainer"].setdefault("amp", "bf16" if CUDA else "none")
    conf["trainer"]["amp"] = trainer.get("amp", "bf16" if CUDA else "none")
    return conf


def _bilevel_conf(tmp: str, out: str) -> dict:
    conf = _sup_conf(tmp, out, save_interval_steps=5)
    conf.update(method="bilevel", unlab_data_dir=f"{tmp}/unlab")
    conf["unsup"] = {"name": "cpc", "num_steps": 2, "num_negatives": 8, "proj_dim": 16}
    conf["bilevel"].update(n1=5, n2=15, n3=10, k=1, gamma0=0.5, gamma_max=2.0, valid_interval=10)
    return conf


def _run(conf: dict, tmp: str, name: str, pause=None, env=None) -> subprocess.Popen:
    if env:
        os.environ.update(env)
    try:
        return run_driver(conf, tmp, name, pause)
    finally:
        for k in env or {}:
            os.environ.pop(k, None)


def _finish(p: subprocess.Popen, timeout: int = 300) -> tuple:
    out, _ = p.communicate(timeout=timeout)
    return p.returncode, out


def _losses(log: str) -> list:
    return [float(v) for v in re.findall(r"\b(?:loss|f|g)[= ]\s*([-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf))", log)]


def part_train(quick: bool, tmp: str) -> None:
    _data(tmp)
    where = "GPU (bf16 autocast)" if CUDA else "CPU"
    for name, conf in (("supervised", _sup_conf(tmp, f"{tmp}/sup30", max_steps=30, max_epoch=100,
                                                  save_interval_steps=10)),
                       ("BL-JUST", _bilevel_conf(tmp, f"{tmp}/bl30"))):
        t0 = time.time()
        rc, log = _finish(_run(conf, tmp, name.replace("-", "")))
        vals = _losses(log)
        finite = bool(vals) and all(v == v and abs(v) != float("inf") for v in vals)
        steps = re.findall(r"step[= ]\s*(\d+)", log)
        phases = name != "BL-JUST" or all(w in log for w in ("[explore]", "[joint]", "[finetune]"))
        ok = rc == 0 and finite and phases
        report(f"train/{name}", "PASS" if ok else "FAIL",
               f"30 steps on {where}: exit {rc}, {len(vals)} logged loss values all finite: {finite}, "
               f"last step logged {steps[-1] if steps else '?'}, "
               f"{'all three phases logged, ' if name == 'BL-JUST' and phases else ''}{time.time() - t0:.1f} s"
               + ("" if ok else "\n" + log[-3000:]))


def _snapshot(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _last_epoch_file(d: str) -> str:
    eps = sorted((int(f[:-9]), f) for f in os.listdir(d) if re.fullmatch(r"\d+epoch\.pth", f))
    return os.path.join(d, eps[-1][1])


def part_resume(quick: bool, tmp: str) -> None:
    _data(tmp)
    where = "GPU" if CUDA else "CPU"
    results = []
    for det in (True, False):
        tag = "det" if det else "nondet"
        ref_conf = _sup_conf(tmp, f"{tmp}/ref_{tag}", max_epoch=3, save_interval_steps=3)
        ref_conf["trainer"]["deterministic"] = det
        ref = _run(ref_conf, tmp, f"ref_{tag}")
        conf = dict(ref_conf, output_dir=f"{tmp}/killed_{tag}")
        ckpt = f"{tmp}/killed_{tag}/checkpoint.pth"
        p = _run(conf, tmp, f"killed_{tag}", pause=30)
        deadline = time.time() + 180
        while not os.path.exists(ckpt) and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        killed = os.path.exists(ckpt) and p.poll() is None
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        rc_ref, out_ref = _finish(ref)
        rc_res, out_res = _finish(_run(conf, tmp, f"resumed_{tag}"))
        if not (killed and rc_ref == 0 and rc_res == 0 and "resumed at step" in out_res):
            results.append((det, None, f"deterministic={det}: run failed (killed {killed}, exit {rc_ref}/{rc_res})\n"
                            + out_res[-2000:]))
            continue
        a = _snapshot(_last_epoch_file(f"{tmp}/ref_{tag}"))
        b = _snapshot(_last_epoch_file(f"{tmp}/killed_{tag}"))
        diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
        results.append((det, diff, f"deterministic={det}: max |param diff| {diff:.3e}"))
    det_exact = any(d and diff == 0.0 for d, diff, _ in results)
    within = all(diff is not None and diff < 1e-3 for _, diff, _ in results)
    report("resume", "PASS" if det_exact or within else "FAIL",
           f"SIGKILL after the first mid-epoch checkpoint, resume, 3 epochs on {where}, {'bf16' if CUDA else 'fp32'}: "
           + "; ".join(r for _, _, r in results)
           + (" (bit-exact with deterministic: true)" if det_exact else " (tolerance 1e-3)"))


# ----------------------------------------------------------------------------- DDP
def _ddp_world1() -> str:
    """One update through DDP over NCCL (world size 1) equals the plain update."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from bljust.nets.asr_model import build_asr_model
    from bljust.train.config import load_config

    conf = load_config(None, [])
    conf["encoder"].update(d_model=64, num_heads=2, ffn_dim=128, num_layers=2, kernel_size=5, dropout=0.0)
    conf["specaug"] = None
    store = dist.TCPStore("127.0.0.1", 0, 1, True)
    dist.init_process_group("nccl", store=store, rank=0, world_size=1)
    try:
        outs = []
        for wrap in (False, True):
            torch.manual_seed(0)
            model = build_asr_model(conf, 80, 40).cuda()
            net = DDP(model, device_ids=[0]) if wrap else model
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            g = torch.Generator(device="cuda").manual_seed(3)
            feats = torch.randn(4, 200, 80, device="cuda", generator=g)
            lens = torch.tensor([200, 180, 150, 120], device="cuda")
            ys = torch.randint(1, 40, (4, 10), device="cuda", generator=g)
            loss, _ = net(feats, lens, ys, torch.full((4,), 10, device="cuda"))
            loss.backward()
            opt.step()
            outs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        return f"NCCL world 1 vs plain: max |diff| {float((outs[0] - outs[1]).abs().max()):.2e}", \
            bool(torch.allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6))
    finally:
        dist.destroy_process_group()


def part_ddp(quick: bool, tmp: str) -> None:
    if not CUDA:
        report("ddp", "SKIP", "no CUDA device (gloo on CPU is covered by test/train/test_ddp.py)")
        return
    _data(tmp)
    figures, ok = [], True
    try:
        fig, good = _ddp_world1()
        figures.append(fig)
        ok &= good
    except Exception as e:
        figures.append(f"NCCL world 1 failed: {e}".splitlines()[0])
        ok = False
    base = _sup_conf(tmp, f"{tmp}/ddp_one", max_epoch=1, accum_grad=2, save_interval_steps=0, amp="none")
    base["encoder"]["dropout"] = 0.0
    base["specaug"] = None
    # plain SGD: the update is the reduced gradient itself (Adam's first step would turn
    # rounding differences in near-zero gradients into +-lr moves)
    base["optim"] = {"name": "sgd", "lr": 0.05}
    rc, out = _finish(_run(base, tmp, "ddp_one", env={"NVIDIA_TF32_OVERRIDE": "0"}))
    ref = _snapshot(f"{tmp}/ddp_one/1epoch.pth") if rc == 0 else None
    for backend in ("nccl", "gloo"):
        # trainer.accum_grad counts global batches: 2 ranks with accum_grad 2 take the same
        # global batches per step as 1 rank with accum_grad 2
        two = dict(base, output_dir=f"{tmp}/ddp_two_{backend}", dist_backend=backend)
        port = str(29500 + (backend == "gloo"))
        # TF32 off: cuDNN's TF32 convolutions round differently for a half and a whole batch, and
        # Adam's first step turns such differences in tiny gradients into +-lr moves
        procs = [_run(two, tmp, f"ddp_{backend}_{r}", env={"RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": "0",
                                                             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
                                                             "NVIDIA_TF32_OVERRIDE": "0"})
                 for r in range(2)]
        res = [_finish(p, 240) for p in procs]
        if all(r[0] == 0 for r in res) and ref is not None:
            got = _snapshot(f"{tmp}/ddp_two_{backend}/1epoch.pth")
            diff = max(float((got[k] - ref[k]).abs().max()) for k in ref)
            good = all(torch.allclose(got[k], ref[k], rtol=1e-4, atol=1e-5) for k in ref)
            figures.append(f"2 ranks on one GPU over {backend} vs 1 rank, SGD, 1 epoch: max |param diff| {diff:.2e}")
            ok &= good
            break
        reason = [ln for ln in res[0][1].splitlines() if "rror" in ln][-1:] or ["?"]
        figures.append(f"2 ranks on one GPU over {backend}: not possible ({reason[0][:160]})")
    else:
        ok = False
    report("ddp", "PASS" if ok else "FAIL", "; ".join(figures))


# ----------------------------------------------------------------------------- benchmarks
def _env() -> dict:
    """The environment of a child process: bljust importable from this tree."""
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _bench(args: list, timeout: int) -> str:
    p = subprocess.run([sys.executable] + args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    print(p.stdout, p.stderr[-2000:] if p.returncode else "", flush=True)
    return p.stdout if p.returncode == 0 else ""


# bench_train.py runs of the bench part: (extra arguments, time limit in s)
TRAIN_RUNS = [
    (["--batch", "16", "--frames", "1500"], 200),
    (["--batch", "64", "--frames", "1500", "--profile", "25"], 200),
    (["--batch", "64", "--frames", "1500", "--channels_last", "--impls", "bljust"], 200),
    (["--batch", "128", "--frames", "1500", "--channels_last", "--impls", "bljust"], 200),
    (["--batch", "64", "--frames", "1500", "--compile", "--impls", "bljust"], 300),
    (["--batch", "64", "--frames", "1500", "--compile", "--channels_last", "--impls", "bljust"], 300),
]
TRAIN_LINE = r"librispeech_conformer\s+(\w+)\s+batch (\S+(?: \[[^\]]*\])?).*?(\d+) frames/s.*?MFU ([\d.]+)%"
BENCHES = ["train", "bilevel", "softdtw"]


def part_bench(quick: bool, benches: str = ",".join(BENCHES)) -> None:
    if not CUDA:
        report("bench", "SKIP", "no CUDA device (CPU figures: run test/bench/*.py directly)")
        return
    todo = benches.split(",")
    if "train" in todo:
        mfu = []
        for extra, budget in TRAIN_RUNS:
            args = ["test/bench/bench_train.py", "--configs", "librispeech_conformer", "--impls", "bljust,torchaudio",
                    "--steps", "5" if quick else "10"] + extra
            try:
                out = _bench(args, budget)
            except subprocess.TimeoutExpired:
                out = ""
                print(f"# bench_train {' '.join(extra)}: over {budget} s, skipped", flush=True)
            mfu += re.findall(TRAIN_LINE, out)
        best = max((float(m) for *_, m in mfu), default=0.0)
        report("bench/train", "PASS" if best >= 40 else "FAIL",
               "; ".join(f"{impl} {shape}: {fps} frames/s MFU {m}%" for impl, shape, fps, m in mfu)
               + " (goal >= 40% MFU bf16; FLOPs: torch.utils.flop_counter on the eager model)" if mfu
               else "bench_train.py failed")
    if "bilevel" in todo:
        _bench_bilevel()
    if "softdtw" in todo:
        _bench_softdtw()


def _bench_bilevel() -> None:
    out = _bench(["test/bench/bench_bilevel.py", "--config", "librispeech", "--repeats", "5", "--batch", "32",
                  "--frames", "1500", "--amp", "bf16"], 300)
    ov = re.findall(r"overhead: ([\d.]+)", out)
    report("bench/bilevel", "PASS" if ov and float(ov[-1]) <= 1.05 else "FAIL",
           (f"joint-step overhead {ov[-1]} (goal <= 1.05); " if ov else "bench_bilevel.py failed; ")
           + " | ".join(ln.strip() for ln in out.splitlines() if "ms" in ln)[:600])


def _bench_softdtw() -> None:
    out = _bench(["test/bench/bench_softdtw.py", "--reps", "3", "--cuda-only"], 300)
    rows = [ln for ln in out.splitlines() if ln.startswith("cuda")]
    sp = re.findall(r"cuda speedup vs pysdtw: ([\d.]+)", out)
    report("bench/softdtw", "PASS" if sp and float(sp[0]) >= 3 else "FAIL",
           " | ".join(rows) + (f" | speedup vs pysdtw {sp[0]}x (goal >= 3x)" if sp else ""))


def part_loader(quick: bool) -> None:
    """bench_loader.py with the workers of a GPU node: frames/s delivered beside the GPU's appetite."""
    if not CUDA:
        report("loader", "SKIP", "no CUDA device (the CPU figures: test/bench/bench_loader.py)")
        return
    workers = [w for w in (0, 2, 4, 8) if w <= (os.cpu_count() or 1)]
    out = _bench(["test/bench/bench_loader.py", "--workers", *map(str, workers),
                  "--batches", "20" if quick else "40"], 400)
    rows = [ln.split("  (")[0] for ln in out.splitlines() if " ark" in ln and "workers" in ln]
    last = re.findall(r"loader/GPU: ([\d.]+)", out)
    report("loader", "PASS" if last and float(last[-1]) >= 2 else "FAIL",
           f"{os.cpu_count()} CPUs, the batches copied to the GPU: " + " | ".join(rows)
           + (f" | loader/GPU {last[-1]} at {workers[-1]} workers (goal >= 2)" if last else " | bench_loader.py failed"))


# the tests of the suite that run only where there is a CUDA device
CUDA_TESTS = ["test/losses/test_softdtw.py", "test/features/test_feats_kinds.py", "test/losses/test_softdtw_triton.py",
              "test/decode/test_model_match.py", "test/train/test_config.py", "test/train/test_experiment_folder.py"]


def part_cudatests(quick: bool) -> None:
    """The suite's CUDA-only tests (skipped in CI, which has no GPU) and the files around them."""
    if not CUDA:
        report("cudatests", "SKIP", "no CUDA device (CI runs these files with their CUDA tests skipped)")
        return
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *CUDA_TESTS],
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=400)
    tail = p.stdout.strip().splitlines()
    print("\n".join(tail[-40:]), flush=True)
    counts = tail[-1] if tail else "no output"
    skipped = [ln for ln in tail if ln.startswith("SKIPPED") and "CUDA" in ln]
    report("cudatests", "PASS" if p.returncode == 0 and not skipped else "FAIL",
           f"pytest {' '.join(os.path.basename(t) for t in CUDA_TESTS)}: {counts}"
           + (f"; skipped for want of CUDA: {len(skipped)}" if skipped else ""))


PARTS = ["softdtw", "amp", "train", "resume", "ddp", "bench", "loader", "cudatests"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: " + ",".join(PARTS))
    ap.add_argument("--quick", action="store_true", help="fewer repetitions in the benchmarks")
    ap.add_argument("--report", default="", help="also write the summary block to this file")
    ap.add_argument("--bench", default=",".join(BENCHES), help="the benchmarks of the bench part: " + ",".join(BENCHES))
    a = ap.parse_args(argv)
    t0 = time.time()
    dev = torch.cuda.get_device_name() if CUDA else "no CUDA device"
    print(f"# bljust GPU check: torch {torch.__version__}, {dev}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for part in a.only.split(","):
            t1 = time.time()
            try:
                fn = globals()[f"part_{part}"]
                # each part takes the options it names: the scratch folder, the benchmarks to run
                named = fn.__code__.co_varnames[:fn.__code__.co_argcount]
                fn(a.quick, **{k: v for k, v in (("tmp", tmp), ("benches", a.bench)) if k in named})
            except Exception as e:  # one broken part must not hide the others' figures
                report(part, "FAIL", f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}")
            print(f"# {part}: {time.time() - t1:.1f} s", flush=True)
    lines = [f"bljust GPU check on {dev}, torch {torch.__version__}, {time.time() - t0:.0f} s"]
    lines += [f"{status:4s} {part}: {fig.splitlines()[0]}" for part, status, fig in RESULTS]
    block = "\n".join(lines)
    print("\n======== summary ========\n" + block, flush=True)
    if a.report:
        with open(a.report, "w") as f:
            f.write(block + "\n")
    return 1 if any(s == "FAIL" for _, s, _ in RESULTS) else 0


if __name__ == "__main__":
    sys.exit(main())
