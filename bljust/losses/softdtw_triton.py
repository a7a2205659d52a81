"""Fused soft-DTW dynamic programme in Triton: one kernel launch per direction.

The torch implementation in :mod:`bljust.losses.softdtw` walks the anti-diagonals
from Python, a few kernel launches per diagonal: on a GPU that is thousands of
launches per call, so it is bound by launch latency.  Here one Triton program
handles one pair and loops over its anti-diagonals itself; the cells of a
diagonal are the lanes of one block (rows ``i``, column ``j = k - i``), and a
block-wide barrier separates diagonals.  The forward fills ``R`` (the soft-DTW
table), the backward fills ``E`` (the expected alignment, Cuturi & Blondel's
Algorithm 2)::

    R[i, j] = C[i, j] + softmin_g(R[i-1, j], R[i, j-1], R[i-1, j-1])
    E[i, j] = sum over successors s of E[s] * exp((R[s] - C[s] - R[i, j]) / g)

``R[s] - C[s]`` is the soft minimum over ``s``'s predecessors, which is at most
``R[i, j]``: every exponent is <= 0, so the recursion is stable for any ``g``
(0.01 over 2,000 frames included) without a log-space detour.  Cells outside a
pair's lengths or band have ``C = +inf`` and so ``R = +inf``; they get ``E = 0``
and contribute nothing.

Memory: ``R``, ``C`` and ``E`` as (P, N + 2, M + 2) tables, O(P * N * M).  The
block holds one diagonal, so N (the padded row count) is limited to 16,384.

Correctness is tested on the CPU with Triton's interpreter (``TRITON_INTERPRET=1``
set before Triton is imported) against the torch path and a float64 reference.
"""
from __future__ import annotations

from typing import Tuple

import torch

try:  # Triton is optional: the torch path is the CPU implementation and the fallback
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where triton is absent
    triton = None

MAX_ROWS = 16384


def available(device: torch.device) -> bool:
    """Whether the fused kernels can run on tensors of `device`."""
    if triton is None:
        return False
    import os

    interpreted = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    return device.type == "cuda" or (interpreted and device.type == "cpu")


if triton is not None:

    @triton.jit
    def _forward_kernel(c_ptr, r_ptr, rows_ptr, cols_ptr, inv_gamma, gamma,
                        stride_p, stride_i, BLOCK: tl.constexpr):
        p = tl.program_id(0).to(tl.int64)
        n = tl.load(rows_ptr + p).to(tl.int32)
        m = tl.load(cols_ptr + p).to(tl.int32)
        base_r = r_ptr + p * stride_p
        base_c = c_ptr + p * stride_p
        i = tl.arange(0, BLOCK) + 1  # row of each lane, 1-based
        for k in range(2, n + m + 1):
            j = k - i
            live = (i <= n) & (j >= 1) & (j <= m)
            off = i * stride_i + j
            up = tl.load(base_r + off - stride_i, mask=live, other=float("inf"))
            left = tl.load(base_r + off - 1, mask=live, other=float("inf"))
            diag = tl.load(base_r + off - stride_i - 1, mask=live, other=float("inf"))
            cost = tl.load(base_c + off, mask=live, other=float("inf"))
            low = tl.minimum(tl.minimum(up, left), diag)
            finite = low < float("inf")
            low0 = tl.where(finite, low, 0.0)
            s = (tl.exp((low0 - up) * inv_gamma) + tl.exp((low0 - left) * inv_gamma)
                 + tl.exp((low0 - diag) * inv_gamma))
            soft = tl.where(finite, low0 - gamma * tl.log(tl.where(finite, s, 1.0)), float("inf"))
            tl.store(base_r + off, cost + soft, mask=live)
            tl.debug_barrier()

    @triton.jit
    def _successor(base_r, base_c, base_e, s_off, s_live, r0, inv_gamma):
        """E[s] * exp((R[s] - C[s] - R[i, j]) / gamma) for one successor s of each lane."""
        rs = tl.load(base_r + s_off, mask=s_live, other=float("inf"))
        s_ok = s_live & (rs < float("inf"))
        cs = tl.load(base_c + s_off, mask=s_ok, other=0.0)
        es = tl.load(base_e + s_off, mask=s_ok, other=0.0)
        w = tl.exp((tl.where(s_ok, rs - cs, r0) - r0) * inv_gamma)
        return tl.where(s_ok, es * w, 0.0)

    @triton.jit
    def _backward_kernel(c_ptr, r_ptr, e_ptr, rows_ptr, cols_ptr, inv_gamma,
                         stride_p, stride_i, BLOCK: tl.constexpr):
        p = tl.program_id(0).to(tl.int64)
        n = tl.load(rows_ptr + p).to(tl.int32)
        m = tl.load(cols_ptr + p).to(tl.int32)
        base_r = r_ptr + p * stride_p
        base_c = c_ptr + p * stride_p
        base_e = e_ptr + p * stride_p
        i = tl.arange(0, BLOCK) + 1
        for t in range(0, n + m - 1):
            k = n + m - t
            j = k - i
            live = (i <= n) & (j >= 1) & (j <= m)
            off = i * stride_i + j
            r = tl.load(base_r + off, mask=live, other=float("inf"))
            ok = live & (r < float("inf"))
            r0 = tl.where(ok, r, 0.0)
            # successors (i+1, j), (i, j+1), (i+1, j+1); past a pair's end R = +inf
            acc = _successor(base_r, base_c, base_e, off + stride_i, ok & (i + 1 <= n), r0, inv_gamma)
            acc += _successor(base_r, base_c, base_e, off + 1, ok & (j + 1 <= m), r0, inv_gamma)
            acc += _successor(base_r, base_c, base_e, off + stride_i + 1,
                              ok & (i + 1 <= n) & (j + 1 <= m), r0, inv_gamma)
            acc = tl.where((i == n) & (j == m), 1.0, acc)
            tl.store(base_e + off, tl.where(ok, acc, 0.0), mask=live)
            tl.debug_barrier()


def _block(n_rows: int) -> Tuple[int, int]:
    if n_rows > MAX_ROWS:
        raise ValueError(f"fused soft-DTW handles at most {MAX_ROWS} rows, got {n_rows}")
    block = max(16, triton.next_power_of_2(n_rows))
    return block, max(1, min(16, block // 128))


def forward(cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
            gamma: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """The R table (P, N + 2, M + 2) and the soft-DTW value of each pair (P,).

    cost: (P, N + 2, M + 2), cell (i, j) at [p, i, j] (1-based), +inf on the border
    and outside each pair's lengths and band.
    """
    P, N2, _ = cost.shape
    r = torch.full_like(cost, float("inf"))
    r[:, 0, 0] = 0.0
    rows32, cols32 = rows.to(torch.int32).contiguous(), cols.to(torch.int32).contiguous()
    block, warps = _block(N2 - 2)
    _forward_kernel[(P,)](cost, r, rows32, cols32, 1.0 / gamma, gamma, cost.stride(0), cost.stride(1),
                          BLOCK=block, num_warps=warps)
    pidx = torch.arange(P, device=cost.device)
    return r, r[pidx, rows.long(), cols.long()]


def backward(r: torch.Tensor, c: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
             gamma: float) -> torch.Tensor:
    """Expected alignment E (P, N, M) from :func:`forward`'s R and its cost table C."""
    P, N2, M2 = r.shape
    e = torch.zeros_like(r)
    rows32, cols32 = rows.to(torch.int32).contiguous(), cols.to(torch.int32).contiguous()
    block, warps = _block(N2 - 2)
    _backward_kernel[(P,)](c, r, e, rows32, cols32, 1.0 / gamma, c.stride(0), c.stride(1),
                           BLOCK=block, num_warps=warps)
    return e[:, 1:N2 - 1, 1:M2 - 1]
