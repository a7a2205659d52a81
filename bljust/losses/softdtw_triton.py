"""Fused soft-DTW dynamic programme in Triton: one kernel launch per direction.

The torch implementation in :mod:`bljust.losses.softdtw` walks the anti-diagonals
from Python, a few kernel launches per diagonal: on a GPU that is thousands of
launches per call, so it is bound by launch latency.  Here one Triton program
handles one pair and loops over its anti-diagonals itself; the cells of a
diagonal are the lanes of one block, and a block-wide barrier separates
diagonals.  The forward computes ``R`` (the soft-DTW table), the backward ``E``
(the expected alignment, Cuturi & Blondel's Algorithm 2)::

    R[i, j] = C[i, j] + softmin_g(R[i-1, j], R[i, j-1], R[i-1, j-1])
    E[i, j] = sum over successors s of E[s] * exp((R[s] - C[s] - R[i, j]) / g)

``R[s] - C[s]`` is the soft minimum over ``s``'s predecessors, which is at most
``R[i, j]``: every exponent is <= 0, so the recursion is stable for any ``g``
(0.01 over 2,000 frames included) without a log-space detour.  Cells outside a
pair's lengths or band have ``C = +inf`` and so ``R = +inf``; they get ``E = 0``
and contribute nothing.

Two table layouts (``layout`` of :func:`forward`, default :data:`LAYOUT`):

* ``"skew"``: diagonal-major tables (P, K, W), K = N + M + 3 diagonals
  ``k = i + j`` of W lanes, cell (i, j) of the padded (N + 2) x (M + 2) table at
  ``[p, i + j, i]``.  The lanes are the shorter axis: when N > M the problem is
  run transposed (cell at ``[p, i + j, j]``; soft-DTW of C^T equals that of C
  and E comes back transposed), so W = min(N, M) + 2.  The neighbours of a cell
  on diagonal k are on diagonals k - 1 (lanes l - 1 and l) and k - 2 (lane
  l - 1): every load is contiguous across lanes, and the values at the lane's
  own position on the previous diagonal stay in registers from the last step.
  The forward reads C, writes ``D = R - C`` (the soft minimum, +inf where
  R = +inf) and keeps R only for the last two diagonals (a 2 x block ring per
  pair, the one value other lanes need); per diagonal it does one dependent
  load (R of lane l - 1) and one cost load issued a step ahead.  The backward
  gets ``R = C + D`` (the forward's own rounding) and per diagonal does one
  dependent load (E of lane l + 1) plus read-only loads issued a step ahead.
  :func:`cost_table` allocates the cost directly in this layout (a strided
  (P, N + 2, M + 2) view of the skewed buffer), so no copy is made; any other
  cost tensor is copied into it.  Not yet run on a GPU: it is tested under
  Triton's interpreter against "rows", the torch path and a float64 DP, and
  test/gpu/check.sh checks it on CUDA and times both layouts
  (test/bench/bench_softdtw.py: "bljust" is the default layout, "bljust-skew"
  or "bljust-rows" the other).  It becomes the default once that check passes
  and finds it faster.
* ``"rows"`` (default): the row-major (P, N + 2, M + 2) tables of the first
  version, lanes are rows ``i`` and column ``j = k - i``; every lane reads a
  different row (uncoalesced loads, about 1 microsecond per diagonal on an
  H200).  Measured on a GPU: correct, 2.7-3.0x faster than pysdtw.

Memory, O(P * N * M) either way, in units of the padded rectangle
(P, N + 2, M + 2): "rows" holds C, R and E (3 tables); "skew" holds C, D and E
as skewed tables of (N + M + 3) / (max(N, M) + 2) < 2 rectangles each (1.9 at
N = 500, M = 450), so up to 6 rectangles in the backward, plus the ring.
The block holds one diagonal, so the lane axis (N for "rows", min(N, M) for
"skew") is limited to 16,384.

Correctness is tested on the CPU with Triton's interpreter (``TRITON_INTERPRET=1``
set before Triton is imported) against the torch path and a float64 reference.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Tuple

import torch

try:  # Triton is optional: the torch path is the CPU implementation and the fallback
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where triton is absent
    triton = None

MAX_ROWS = 16384
# default table layout of forward / backward: "rows" until the GPU check has measured "skew"
# on a GPU (its correctness is tested under the interpreter only; see the module docstring)
LAYOUT = "rows"
LAYOUTS = ("skew", "rows")


def available(device: torch.device) -> bool:
    """Whether the fused kernels can run on tensors of `device`."""
    if triton is None:
        return False
    import os

    interpreted = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    return device.type == "cuda" or (interpreted and device.type == "cpu")


if triton is not None:

    @triton.jit
    def _pair(n_ptr, m_ptr):
        """This program's pair and its lengths along the two axes of its table."""
        p = tl.program_id(0).to(tl.int64)
        return p, tl.load(n_ptr + p).to(tl.int32), tl.load(m_ptr + p).to(tl.int32)

    @triton.jit
    def _forward_kernel(c_ptr, r_ptr, rows_ptr, cols_ptr, inv_gamma, gamma,
                        stride_p, stride_i, BLOCK: tl.constexpr):
        p, n, m = _pair(rows_ptr, cols_ptr)
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
        p, n, m = _pair(rows_ptr, cols_ptr)
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


    @triton.jit
    def _forward_skew_kernel(c_ptr, d_ptr, ring_ptr, val_ptr, lanes_ptr, other_ptr, inv_gamma, gamma,
                             stride_p, stride_k, BLOCK: tl.constexpr):
        """Skewed layout: lane l is row i = l + 1 of the (possibly transposed) problem."""
        p, n, m = _pair(lanes_ptr, other_ptr)
        base_c = c_ptr + p * stride_p
        base_d = d_ptr + p * stride_p
        ring = ring_ptr + p * (2 * BLOCK)  # R of the last two diagonals, slot k % 2, lane i - 1
        i = tl.arange(0, BLOCK) + 1
        zero = tl.full([BLOCK], 0.0, c_ptr.dtype.element_ty)
        inf = zero + float("inf")
        left = inf  # R[i, j - 1]: this lane's result on the previous diagonal
        diag = tl.where(i == 1, zero, inf)  # R[i - 1, j - 1]: this lane's previous `up`; R[0, 0] = 0
        j = 2 - i
        cost_next = tl.load(base_c + 2 * stride_k + i, mask=(i <= n) & (j >= 1) & (j <= m),
                            other=float("inf"))
        for k in range(2, n + m + 1):
            j = k - i
            live = (i <= n) & (j >= 1) & (j <= m)
            cost = cost_next
            # R[i - 1, j], stored by lane i - 2 on the previous diagonal (R[0, j > 0] = +inf)
            up = tl.load(ring + ((k - 1) % 2) * BLOCK + (i - 2), mask=live & (i >= 2),
                         other=float("inf"))
            jn = j + 1  # the next diagonal's cost does not depend on this one: load it now
            cost_next = tl.load(base_c + (k + 1) * stride_k + i, mask=(i <= n) & (jn >= 1) & (jn <= m),
                                other=float("inf"))
            low = tl.minimum(tl.minimum(up, left), diag)
            finite = low < float("inf")
            low0 = tl.where(finite, low, 0.0)
            s = (tl.exp((low0 - up) * inv_gamma) + tl.exp((low0 - left) * inv_gamma)
                 + tl.exp((low0 - diag) * inv_gamma))
            soft = tl.where(finite, low0 - gamma * tl.log(tl.where(finite, s, 1.0)), float("inf"))
            r = cost + soft  # +inf off the pair (cost = +inf there)
            tl.store(base_d + k * stride_k + i, tl.where(r < float("inf"), soft, float("inf")), mask=live)
            tl.store(ring + (k % 2) * BLOCK + (i - 1), r)
            left = r
            diag = up
            tl.debug_barrier()
        tl.store(val_ptr + p + i * 0, left, mask=i == n)  # R[n, m], lane n's last result

    @triton.jit
    def _term(es, ds, r0, ok, inv_gamma):
        """E[s] * exp((D[s] - R[i, j]) / gamma) where successor s is usable (D[s] < inf), else 0."""
        use = ok & (ds < float("inf"))
        return tl.where(use, es * tl.exp((tl.where(use, ds, r0) - r0) * inv_gamma), 0.0)

    @triton.jit
    def _backward_skew_kernel(c_ptr, d_ptr, e_ptr, lanes_ptr, other_ptr, inv_gamma,
                              stride_p, stride_k, BLOCK: tl.constexpr):
        p, n, m = _pair(lanes_ptr, other_ptr)
        base_c = c_ptr + p * stride_p
        base_d = d_ptr + p * stride_p
        base_e = e_ptr + p * stride_p
        i = tl.arange(0, BLOCK) + 1
        zero = tl.full([BLOCK], 0.0, c_ptr.dtype.element_ty)
        inf = zero + float("inf")
        # successors (i, j + 1) ("right", this lane on diagonal k + 1) and (i + 1, j + 1)
        # ("dd", lane i + 1 on diagonal k + 2 = the previous step's "down"): from registers
        e_right, d_right, e_dd, d_dd = zero, inf, zero, inf
        # read-only loads of diagonal k are issued during step k + 1
        k = n + m
        j = k - i
        live = (i <= n) & (j >= 1) & (j <= m)
        down = (i + 1 <= n) & (j >= 1) & (j <= m)  # successor (i + 1, j) within the lengths
        c_next = tl.load(base_c + k * stride_k + i, mask=live, other=float("inf"))
        d_next = tl.load(base_d + k * stride_k + i, mask=live, other=float("inf"))
        dd_next = tl.load(base_d + (k + 1) * stride_k + i + 1, mask=down, other=float("inf"))
        for t in range(0, n + m - 1):
            k = n + m - t
            j = k - i
            live = (i <= n) & (j >= 1) & (j <= m)
            down = (i + 1 <= n) & (j >= 1) & (j <= m)
            c = c_next
            d = d_next
            d_down = dd_next
            # E[i + 1, j], stored by lane i + 1 on the previous step
            e_down = tl.load(base_e + (k + 1) * stride_k + i + 1, mask=down, other=0.0)
            jn = j - 1
            live_n = (i <= n) & (jn >= 1) & (jn <= m)
            down_n = (i + 1 <= n) & (jn >= 1) & (jn <= m)
            c_next = tl.load(base_c + (k - 1) * stride_k + i, mask=live_n, other=float("inf"))
            d_next = tl.load(base_d + (k - 1) * stride_k + i, mask=live_n, other=float("inf"))
            dd_next = tl.load(base_d + k * stride_k + i + 1, mask=down_n, other=float("inf"))
            r = c + d  # the forward's R, same rounding
            ok = live & (r < float("inf"))
            r0 = tl.where(ok, r, 0.0)
            acc = _term(e_right, d_right, r0, ok, inv_gamma)
            acc += _term(e_down, d_down, r0, ok, inv_gamma)
            acc += _term(e_dd, d_dd, r0, ok, inv_gamma)
            acc = tl.where((i == n) & (j == m), 1.0, acc)
            e = tl.where(ok, acc, 0.0)
            tl.store(base_e + k * stride_k + i, e, mask=live)
            e_right = e
            d_right = d
            e_dd = e_down
            d_dd = d_down
            tl.debug_barrier()


def _block(n_rows: int) -> Tuple[int, int]:
    if n_rows > MAX_ROWS:
        raise ValueError(f"fused soft-DTW handles at most {MAX_ROWS} rows, got {n_rows}")
    block = max(16, triton.next_power_of_2(n_rows))
    return block, max(1, min(16, block // 128))


def _layout(layout: Optional[str]) -> str:
    layout = LAYOUT if layout is None else layout
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return layout


@contextlib.contextmanager
def using(layout: str) -> Iterator[None]:
    """Within the block, :func:`forward` and :func:`cost_table` default to `layout` (for the
    checks and benchmarks that compare the layouts through the soft-DTW functions)."""
    global LAYOUT
    previous, LAYOUT = LAYOUT, _layout(layout)
    try:
        yield
    finally:
        LAYOUT = previous


def _geometry(n2: int, m2: int) -> Tuple[int, int, bool]:
    """Diagonals K, lanes W and whether lanes are columns, for a padded n2 x m2 table."""
    return n2 + m2 - 1, min(n2, m2), n2 > m2


def _skew_strides(n2: int, m2: int) -> Tuple[int, int, int]:
    """Strides of the (P, n2, m2) view of a skewed buffer: cell (i, j) at [p, i + j, lane]."""
    K, W, transposed = _geometry(n2, m2)
    return (K * W, W, W + 1) if transposed else (K * W, W + 1, W)


def _skew_view(buf: torch.Tensor, n2: int, m2: int) -> torch.Tensor:
    """(P, n2, m2) view of a skewed (P, K, W) buffer."""
    return buf.as_strided((buf.shape[0], n2, m2), _skew_strides(n2, m2), buf.storage_offset())


def cost_table(P: int, N: int, M: int, dtype: torch.dtype, device: torch.device,
               layout: Optional[str] = None) -> torch.Tensor:
    """A (P, N + 2, M + 2) cost table of +inf for :func:`forward` to fill.

    For the "skew" layout it is a strided view of the skewed buffer, which
    :func:`forward` and :func:`backward` then use without a copy.
    """
    if _layout(layout) == "rows":
        return torch.full((P, N + 2, M + 2), float("inf"), dtype=dtype, device=device)
    K, W, _ = _geometry(N + 2, M + 2)
    buf = torch.full((P, K, W), float("inf"), dtype=dtype, device=device)
    return _skew_view(buf, N + 2, M + 2)


def _skewed(cost: torch.Tensor) -> torch.Tensor:
    """The skewed (P, K, W) buffer holding `cost`: the one behind a :func:`cost_table`
    view (no copy), else a skewed copy (+inf off the table)."""
    P, n2, m2 = cost.shape
    K, W, _ = _geometry(n2, m2)
    if (cost.stride() == _skew_strides(n2, m2)
            and cost.storage_offset() == 0
            and cost.untyped_storage().nbytes() >= P * K * W * cost.element_size()):
        return cost.as_strided((P, K, W), (K * W, W, 1), 0)
    buf = torch.full((P, K, W), float("inf"), dtype=cost.dtype, device=cost.device)
    _skew_view(buf, n2, m2).copy_(cost)
    return buf


def _lane_lengths(rows: torch.Tensor, cols: torch.Tensor, transposed: bool):
    rows32, cols32 = rows.to(torch.int32).contiguous(), cols.to(torch.int32).contiguous()
    return (cols32, rows32) if transposed else (rows32, cols32)


def forward(cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, gamma: float,
            layout: Optional[str] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """The DP table for :func:`backward` and the soft-DTW value of each pair (P,).

    cost: (P, N + 2, M + 2), cell (i, j) at [p, i, j] (1-based), +inf outside each
    pair's lengths and band (its border is not read); best made by :func:`cost_table`.
    It is not modified.  The table returned is R (P, N + 2, M + 2) for layout
    "rows" and the skewed D = R - C (P, K, W) for "skew".
    """
    if _layout(layout) == "rows":
        cost = cost.contiguous()
        P, N2, _ = cost.shape
        r = torch.full_like(cost, float("inf"))
        r[:, 0, 0] = 0.0
        rows32, cols32 = _lane_lengths(rows, cols, False)
        block, warps = _block(N2 - 2)
        _forward_kernel[(P,)](cost, r, rows32, cols32, 1.0 / gamma, gamma, cost.stride(0), cost.stride(1),
                              BLOCK=block, num_warps=warps)
        pidx = torch.arange(P, device=cost.device)
        return r, r[pidx, rows.long(), cols.long()]
    P, N2, M2 = cost.shape
    K, W, transposed = _geometry(N2, M2)
    c = _skewed(cost)
    d = torch.empty_like(c)  # the kernel writes every cell within each pair's lengths
    block, warps = _block(W - 2)
    ring = torch.empty((P, 2, block), dtype=c.dtype, device=c.device)
    values = torch.empty(P, dtype=c.dtype, device=c.device)
    lanes, other = _lane_lengths(rows, cols, transposed)
    _forward_skew_kernel[(P,)](c, d, ring, values, lanes, other, 1.0 / gamma, gamma, K * W, W,
                               BLOCK=block, num_warps=warps)
    return d, values


def backward(r: torch.Tensor, c: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
             gamma: float, layout: Optional[str] = None) -> torch.Tensor:
    """Expected alignment E (P, N, M) from :func:`forward`'s table `r` and the cost `c`
    given to it.  layout: :func:`forward`'s (default: told apart by `r`'s shape).

    For "skew" E is a strided view of a skewed buffer (no unskewing copy).
    """
    skew = r.shape != c.shape
    if layout is not None and (_layout(layout) == "skew") != skew:
        raise ValueError(f"layout={layout!r} does not match forward's table of shape {tuple(r.shape)}")
    P, N2, M2 = c.shape
    if not skew:
        c = c.contiguous()
        e = torch.zeros_like(r)
        rows32, cols32 = _lane_lengths(rows, cols, False)
        block, warps = _block(N2 - 2)
        _backward_kernel[(P,)](c, r, e, rows32, cols32, 1.0 / gamma, c.stride(0), c.stride(1),
                               BLOCK=block, num_warps=warps)
        return e[:, 1:N2 - 1, 1:M2 - 1]
    K, W, transposed = _geometry(N2, M2)
    cs = _skewed(c)
    e = torch.zeros_like(cs)
    block, warps = _block(W - 2)
    lanes, other = _lane_lengths(rows, cols, transposed)
    _backward_skew_kernel[(P,)](cs, r, e, lanes, other, 1.0 / gamma, K * W, W,
                                BLOCK=block, num_warps=warps)
    return _skew_view(e, N2, M2)[:, 1:N2 - 1, 1:M2 - 1]
