"""Benchmark: soft-DTW divergence forward+backward, bljust vs peers.

    python test/bench/bench_softdtw.py [--reps 3] [--gamma 0.1]

CPU peer: tslearn's SoftDTWLossPyTorch(normalize=True) (pip package ``tslearn``,
benchmark only; skipped with a message when missing).  On CUDA: ours with the
fused Triton kernels in their default table layout ("bljust") and in the other
one ("bljust-skew" or "bljust-rows": diagonal-major or row-major tables), ours
with the torch path ("bljust-torch") and pysdtw (skipped when missing);
``cuda speedup vs pysdtw`` is pysdtw's time / the default fused kernels' at
(4, 500, 450, 256), ``cuda speedup vs pysdtw (<other> layout)`` the same for the
other layout, and ``cuda skew vs rows layout`` the rows layout's time / the skew's.
Runs are interleaved (ours, peer, ours, ...) and the best wall time is kept
because the CPU may be shared (OMP_WAIT_POLICY defaults to PASSIVE here, see
below).  Peak memory: RSS
high-water mark over the run (CPU; /proc/self/clear_refs resets it) and
torch.cuda.max_memory_allocated (GPU).

Last line: ``speedup: X.XX`` = tslearn's time / ours on one thread at the larger
shape (or ``speedup: n/a`` when tslearn is missing).
"""

import argparse
import os
import resource
import sys
import time

# On a shared CPU, OpenMP workers that spin after each parallel region (the
# default) steal the core from the main thread: 2-thread timings then swing
# 10x from run to run.  Must be set before torch (or numba) loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from bljust.losses.softdtw import soft_dtw_divergence  # noqa: E402

SHAPES = [(8, 200, 220, 256), (4, 500, 450, 256)]


def _rss_kb(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> int:
    """Reset the RSS high-water mark; returns the RSS it starts from."""
    try:  # give freed heap back first, or reused pages hide a peak
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return _rss_kb("VmRSS")


def _inputs(shape, device, seed=0):
    b, n, m, d = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(b, n, d, generator=g), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(b, m, d, generator=g), dim=-1)
    return x.to(device).requires_grad_(), y.to(device).requires_grad_()


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time_once(fn, shape, device):
    """Wall seconds of one forward+backward and peak memory in MiB."""
    x, y = _inputs(shape, device)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _reset_peak()
    t0 = time.perf_counter()
    fn(x, y).sum().backward()
    _sync(device)
    dt = time.perf_counter() - t0
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = max(0, _rss_kb("VmHWM") - base) / 1024
    return dt, peak


def _ours(gamma, impl="auto", layout=None):
    if layout is None:
        return lambda x, y: soft_dtw_divergence(x, y, gamma=gamma, impl=impl)
    from bljust.losses import softdtw_triton

    def run(x, y):  # the backward tells the layout from the forward's table
        with softdtw_triton.using(layout):
            return soft_dtw_divergence(x, y, gamma=gamma, impl=impl)

    return run


def _tslearn(gamma):
    try:
        from tslearn.metrics import SoftDTWLossPyTorch
    except ImportError as e:
        print(f"# tslearn missing ({e}); pip install tslearn to compare", flush=True)
        return None
    loss = SoftDTWLossPyTorch(gamma=gamma, normalize=True)
    return lambda x, y: loss(x, y)


def _pysdtw(gamma):
    try:
        import numpy as np
        import pysdtw
    except ImportError as e:
        print(f"# pysdtw missing ({e}); pip install pysdtw to compare on CUDA", flush=True)
        return None
    if not hasattr(np, "row_stack"):  # pysdtw 0.0.5 calls np.row_stack, gone in NumPy 2.x
        np.row_stack = np.vstack
    try:
        sdtw = pysdtw.SoftDTW(gamma=gamma, dist_func=pysdtw.distance.pairwise_l2_squared,
                              use_cuda=True)
    except Exception as e:  # an API change in the peer must not stop the bench
        print(f"# pysdtw unusable ({e}); skipped", flush=True)
        return None
    return lambda x, y: sdtw(x, y) - 0.5 * (sdtw(x, x) + sdtw(y, y))


def _set_threads(n):
    torch.set_num_threads(n)
    try:
        import numba
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass


def _compare(methods, shape, device, reps):
    """Best time and peak memory of each method; a method that fails (a peer's length cap,
    out of memory) gets its error instead, and the others still run."""
    best = {name: (float("inf"), 0.0) for name in methods}
    failed = {}
    for name, fn in methods.items():  # warm-up (numba JIT, Triton compile, allocator)
        _time_once(fn, (1, 16, 12, shape[3]), device)
    for _ in range(reps):
        for name, fn in methods.items():
            if name in failed:
                continue
            try:
                dt, peak = _time_once(fn, shape, device)
            except Exception as e:
                failed[name] = str(e).splitlines()[0][:80]
                continue
            best[name] = (min(best[name][0], dt), max(best[name][1], peak))
    for name, why in failed.items():
        best[name] = why
    return best


def _row(best, digits):
    return "  ".join(f"{n} failed ({v})" if isinstance(v, str) else f"{n} {v[0]:7.{digits}f} s peak {v[1]:7.0f} MiB"
                     for n, v in best.items())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--gamma", type=float, default=0.1)
    ap.add_argument("--cuda-only", action="store_true", help="skip the CPU comparison")
    args = ap.parse_args(argv)
    cpu = torch.device("cpu")
    methods = {"bljust": _ours(args.gamma)}
    peer = _tslearn(args.gamma)
    if peer is not None:
        methods["tslearn"] = peer
    speedup = None
    print(f"# soft-DTW divergence fwd+bwd, gamma={args.gamma}, best of {args.reps}, "
          f"torch {torch.__version__}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    for threads in () if args.cuda_only else (1, 2):
        _set_threads(threads)
        for shape in SHAPES:
            best = _compare(methods, shape, cpu, args.reps)
            row = _row(best, 3)
            print(f"cpu threads={threads} (B,N,M,D)={shape}: {row}", flush=True)
            if threads == 1 and shape == SHAPES[-1] and not isinstance(best.get("tslearn", ""), str):
                speedup = best["tslearn"][0] / best["bljust"][0]
    cuda_speedup = None
    if torch.cuda.is_available():
        from bljust.losses import softdtw_triton

        gpu = torch.device("cuda")
        other = next(lay for lay in softdtw_triton.LAYOUTS if lay != softdtw_triton.LAYOUT)
        methods = {"bljust": _ours(args.gamma)}
        if softdtw_triton.available(gpu):  # "bljust" is then the fused kernels: time the torch path too
            methods[f"bljust-{other}"] = _ours(args.gamma, "triton", layout=other)
            methods["bljust-torch"] = _ours(args.gamma, "torch")
        peer = _pysdtw(args.gamma)
        if peer is not None:
            methods["pysdtw"] = peer
        for shape in SHAPES + [(16, 1000, 900, 256)]:
            try:
                best = _compare(methods, shape, gpu, args.reps)
            except Exception as e:  # a peer's length cap (pysdtw: 1024) or OOM
                print(f"cuda {shape}: failed: {e}".splitlines()[0])
                continue
            row = _row(best, 4)
            print(f"cuda (B,N,M,D)={shape}: {row}", flush=True)
            if (shape == SHAPES[-1] and not isinstance(best.get("pysdtw", ""), str)
                    and not isinstance(best["bljust"], str)):
                cuda_speedup = best["pysdtw"][0] / best["bljust"][0]
            if (shape == SHAPES[-1] and not isinstance(best.get(f"bljust-{other}", ""), str)
                    and not isinstance(best["bljust"], str)):
                t = {softdtw_triton.LAYOUT: best["bljust"][0], other: best[f"bljust-{other}"][0]}
                print(f"cuda skew vs rows layout: {t['rows'] / t['skew']:.2f}x", flush=True)
                if not isinstance(best.get("pysdtw", ""), str):
                    print(f"cuda speedup vs pysdtw ({other} layout): {best['pysdtw'][0] / t[other]:.2f}", flush=True)
        if cuda_speedup is not None:
            print(f"cuda speedup vs pysdtw: {cuda_speedup:.2f}")
    print(f"speedup: {speedup:.2f}" if speedup is not None else "speedup: n/a")
    return 0


if __name__ == "__main__":
    sys.exit(main())
