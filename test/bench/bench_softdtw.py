"""Benchmark: soft-DTW divergence forward+backward, bljust vs peers.

    python test/bench/bench_softdtw.py [--reps 3] [--gamma 0.1]

CPU peer: tslearn's SoftDTWLossPyTorch(normalize=True) (pip package ``tslearn``,
benchmark only; skipped with a message when missing).  On CUDA also pysdtw
(skipped when missing).  Runs are interleaved (ours, peer, ours, ...) and the
best wall time is kept because the CPU may be shared (OMP_WAIT_POLICY
defaults to PASSIVE here, see below).  Peak memory: RSS
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


def _ours(gamma):
    return lambda x, y: soft_dtw_divergence(x, y, gamma=gamma)


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
        import pysdtw
    except ImportError as e:
        print(f"# pysdtw missing ({e}); pip install pysdtw to compare on CUDA", flush=True)
        return None
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
    best = {name: (float("inf"), 0.0) for name in methods}
    for name, fn in methods.items():  # warm-up (numba JIT, allocator)
        _time_once(fn, (1, 16, 12, shape[3]), device)
    for _ in range(reps):
        for name, fn in methods.items():
            dt, peak = _time_once(fn, shape, device)
            best[name] = (min(best[name][0], dt), max(best[name][1], peak))
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--gamma", type=float, default=0.1)
    args = ap.parse_args(argv)
    cpu = torch.device("cpu")
    methods = {"bljust": _ours(args.gamma)}
    peer = _tslearn(args.gamma)
    if peer is not None:
        methods["tslearn"] = peer
    speedup = None
    print(f"# soft-DTW divergence fwd+bwd, gamma={args.gamma}, best of {args.reps}, "
          f"torch {torch.__version__}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    for threads in (1, 2):
        _set_threads(threads)
        for shape in SHAPES:
            best = _compare(methods, shape, cpu, args.reps)
            row = "  ".join(f"{n} {t:7.3f} s peak {m:7.0f} MiB" for n, (t, m) in best.items())
            print(f"cpu threads={threads} (B,N,M,D)={shape}: {row}", flush=True)
            if threads == 1 and shape == SHAPES[-1] and "tslearn" in best:
                speedup = best["tslearn"][0] / best["bljust"][0]
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        methods = {"bljust": _ours(args.gamma)}
        peer = _pysdtw(args.gamma)
        if peer is not None:
            methods["pysdtw"] = peer
        for shape in SHAPES + [(16, 1000, 900, 256)]:
            try:
                best = _compare(methods, shape, gpu, args.reps)
            except Exception as e:  # a peer's length cap (pysdtw: 1024) or OOM
                print(f"cuda {shape}: failed: {e}".splitlines()[0])
                continue
            row = "  ".join(f"{n} {t:7.4f} s peak {m:7.0f} MiB" for n, (t, m) in best.items())
            print(f"cuda (B,N,M,D)={shape}: {row}", flush=True)
    print(f"speedup: {speedup:.2f}" if speedup is not None else "speedup: n/a")
    return 0


if __name__ == "__main__":
    sys.exit(main())
