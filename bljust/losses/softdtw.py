"""Soft-DTW and the soft-DTW divergence for padded batches of sequence pairs.

Soft-DTW (Cuturi & Blondel, 2017) with squared-Euclidean frame cost::

    R[i, j] = C[i, j] + softmin_g(R[i-1, j], R[i, j-1], R[i-1, j-1])
    softmin_g(a, b, c) = -g * log(exp(-a/g) + exp(-b/g) + exp(-c/g))

and the divergence D(X, Y) = sdtw(X, Y) - (sdtw(X, X) + sdtw(Y, Y)) / 2, which
is zero for X == Y and non-negative (Blondel et al., 2021).

How it is made fast:

* The cost matrix is ||x||^2 + ||y||^2 - 2 x.y^T from one batched matmul; its
  gradient comes back from the expected-alignment matrix E with matmuls too, so
  nothing of size B*N*M*D is ever built.
* The DP runs on anti-diagonals: every cell of a diagonal depends only on the
  two previous diagonals, so one diagonal of *all* pairs is one tensor op.  The
  cost and the DP tables live in a skewed, diagonal-major layout
  ``[diagonal, pair, row]`` so each step reads and writes contiguous rows.
* Everything is kept as ``Q = -R / gamma`` so a DP step is two ``logaddexp``
  and one add, which are stable for any gamma (no exp overflow at gamma=0.01).
* The backward pass is the expected-alignment recursion of Cuturi & Blondel's
  Algorithm 2, written as its log-space twin: ``G[i,j] = logsumexp over the
  successors s of (G[s] - C[s]/gamma)`` with ``G = -Q`` at the end cell (so
  E = 1 there), and ``E = exp(Q + G)``; never autograd through the DP.  This is
  the forward recursion run backwards, so it is as stable as the forward.
* The divergence's three terms (X vs Y, X vs X, Y vs Y) go through one DP call
  of 3B pairs.

Sakoe-Chiba band for unequal lengths: both axes are stretched to the pair's
longer length L = max(n, m) and cell (i, j) (1-based) is kept iff
``|i * L / n - j * L / m| <= w``; for n == m this is the usual |i - j| <= w.
To keep the end cell reachable, w is raised to at least L / min(n, m) for that
pair.  Cells outside the band (and padding) have cost +inf.

Memory: the DP keeps two float tables of (N + M + 3) x P x (N + 2) cells for
P pairs padded to N x M (about 4 P N M floats; P = 3B for the divergence), no
term in D.  There is no length cap.

Devices: the same vectorised torch code runs on CPU and CUDA tensors; on CUDA
each anti-diagonal step is a few kernel launches, so there the fused Triton
kernels of :mod:`bljust.losses.softdtw_triton` (one launch per direction) are
used when triton is installed (``impl="auto"``; ``impl="torch"`` forces this
path); their cost table is built in their layout (row-major or skewed, see that
module for its memory).  On one CPU core, (B, N, M, D) = (4, 500, 450, 256)
divergence forward + backward takes about 0.12 s (see test/bench/bench_softdtw.py).
"""

from typing import Optional, Tuple

import torch

from bljust.losses import softdtw_triton

__all__ = ["soft_dtw", "soft_dtw_divergence", "expected_alignment", "SoftDTW"]

_NEG_INF = float("-inf")


def _skewed_view(buf: torch.Tensor, p0: int, n: int, m: int) -> torch.Tensor:
    """(n, m, ...) view of rows 1..n / cols 1..m of pairs p0.. in a [K, P, W] buffer.

    Cell (i, j) (1-based) sits at buf[i + j, p, i]; returned shape is (Pn, n, m)
    for the Pn pairs starting at p0, 0-based in i and j.
    """
    _, P, W = buf.shape
    return buf.as_strided((P - p0, n, m), (W, P * W + 1, P * W),
                          buf.storage_offset() + 2 * P * W + 1 + p0 * W)


def _band_keep(n_rows: torch.Tensor, n_cols: torch.Tensor, N: int, M: int,
               bandwidth: Optional[float]) -> torch.Tensor:
    """Bool mask (P, N, M) of the cells each pair may use (lengths and band)."""
    dev = n_rows.device
    i = torch.arange(1, N + 1, device=dev).view(1, N, 1)
    j = torch.arange(1, M + 1, device=dev).view(1, 1, M)
    nr = n_rows.view(-1, 1, 1)
    nc = n_cols.view(-1, 1, 1)
    keep = (i <= nr) & (j <= nc)
    if bandwidth is not None:
        # Row i keeps the columns j with |i L/n - j L/m| <= w: an interval, so
        # only (P, N) bounds are computed, never a (P, N, M) float tensor.
        nrf, ncf = nr.to(torch.float64), nc.to(torch.float64)
        longest = torch.maximum(nrf, ncf)
        w = torch.clamp(longest / torch.minimum(nrf, ncf), min=float(bandwidth))
        centre = i.to(torch.float64) * (longest / nrf)
        tol = 1e-9
        keep &= j >= (centre - w - tol) * (ncf / longest)
        keep &= j <= (centre + w + tol) * (ncf / longest)
    return keep


def _fill_borders(buf: torch.Tensor, row: int, col: int) -> None:
    """Set cells (row, *) and (*, col) of a skewed [K, P, W] buffer to -inf."""
    K, P, W = buf.shape
    buf[:, :, row] = _NEG_INF
    n = min(W, K - col)
    buf.as_strided((n, P), (P * W + 1, W), buf.storage_offset() + col * P * W).fill_(_NEG_INF)


def _dp_forward(dq: torch.Tensor, n_rows: torch.Tensor, n_cols: torch.Tensor,
                N: int, M: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Q = -R/gamma for all cells (skewed) and Q at each pair's end cell."""
    K, P, W = dq.shape
    S, dtype, dev = P * W, dq.dtype, dq.device
    q = torch.empty((K, P, W), dtype=dtype, device=dev)
    _fill_borders(q, 0, 0)
    q[0, :, 0] = 0.0
    qf, dqf = q.view(-1), dq.view(-1)
    tmp = torch.empty(P * N, dtype=dtype, device=dev)
    lae = torch.logaddexp
    st = (W, 1)
    # One anti-diagonal of all pairs per step; views via as_strided because
    # indexing costs several microseconds per call and there are N+M steps.
    for k in range(2, N + M + 1):
        lo, hi = max(1, k - M), min(N, k - 1) + 1
        sz = (P, hi - lo)
        b1, b2 = (k - 1) * S, (k - 2) * S
        t = tmp.as_strided(sz, (hi - lo, 1), 0)
        lae(qf.as_strided(sz, st, b1 + lo - 1), qf.as_strided(sz, st, b1 + lo), out=t)
        lae(t, qf.as_strided(sz, st, b2 + lo - 1), out=t)
        torch.add(t, dqf.as_strided(sz, st, k * S + lo), out=qf.as_strided(sz, st, k * S + lo))
    pidx = torch.arange(P, device=dev)
    q_end = q[n_rows + n_cols, pidx, n_rows]
    return q, q_end


def _dp_backward(dq: torch.Tensor, q: torch.Tensor, n_rows: torch.Tensor,
                 n_cols: torch.Tensor, N: int, M: int) -> torch.Tensor:
    """Log of the expected alignment E in the skewed layout (valid cells only).

    Consumes dq (its buffer is reused).  The result is a view of a [K - 2, P, W]
    buffer with the same cell layout as q (cell (i, j) at [i + j, p, i]).
    """
    K, P, W = q.shape
    S = P * W
    # h[s] = G[s] - C[s]/gamma, the successor terms of the log-space recursion;
    # log E = Q + G.  h[k] replaces dq[k] in place: dq[k] is read at step k only.
    h = dq
    _fill_borders(h, N + 1, M + 1)
    ends = {}
    for p, (nr, nc) in enumerate(zip(n_rows.tolist(), n_cols.tolist())):
        ends.setdefault(nr + nc, []).append((p, nr))
    ends = {k: (torch.tensor([a for a, _ in v], device=q.device),
                torch.tensor([b for _, b in v], device=q.device)) for k, v in ends.items()}
    hf, qf = h.view(-1), q.view(-1)
    tmp = torch.empty(P * N, dtype=q.dtype, device=q.device)
    lae = torch.logaddexp
    st = (W, 1)
    floor = -80.0 if q.dtype == torch.float32 else -700.0  # exp(floor) ~ 1e-35 / 1e-304
    for k in range(N + M, 1, -1):
        lo, hi = max(1, k - M), min(N, k - 1) + 1
        sz = (P, hi - lo)
        b1, b2, b0 = (k + 1) * S, (k + 2) * S, k * S + lo
        g = tmp.as_strided(sz, (hi - lo, 1), 0)
        lae(hf.as_strided(sz, st, b1 + lo + 1), hf.as_strided(sz, st, b1 + lo), out=g)
        lae(g, hf.as_strided(sz, st, b2 + lo + 1), out=g)
        if k in ends:
            ps, rows = ends[k]
            g[ps, rows - lo] = -q[k, ps, rows]
        hk = hf.as_strided(sz, st, b0)
        torch.add(g, hk, out=hk)
        # log E[k] goes to h's slot k + 2, which no later step reads: saves a
        # buffer.  Clamped because torch's exp is ~10x slower on inputs that
        # underflow; exp itself is done once at the end (per-step exp_ gets
        # multithreaded and then waits on the thread pool at every step).
        e = hf.as_strided(sz, st, b2 + lo)
        torch.add(g, qf.as_strided(sz, st, b0), out=e).clamp_(min=floor)
    return h[2:]


def _augment(x: torch.Tensor, left: bool, gamma: float) -> torch.Tensor:
    """[x, |x|^2, 1] (left) or [2y, -1, -|y|^2] / gamma (right): one bmm of the
    two gives -C/gamma = (2 x.y - |x|^2 - |y|^2) / gamma."""
    sq = (x * x).sum(-1, keepdim=True)
    one = torch.ones_like(sq)
    if left:
        return torch.cat([x, sq, one], -1)
    return torch.cat([x * (2.0 / gamma), -one / gamma, -sq / gamma], -1)


def _build_dq(x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
              gamma: float, bandwidth: Optional[float], divergence: bool) -> torch.Tensor:
    """-C / gamma of every pair in the skewed [K, P, W] layout, -inf outside.

    Only cells the recursions read are written: the buffer is large.
    """
    groups = [(x, y), (x, x), (y, y)] if divergence else [(x, y)]
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    N = max(a.shape[1] for a, _ in groups)
    M = max(b.shape[1] for _, b in groups)
    P = int(rows.numel())
    dq = torch.empty((N + M + 3, P, N + 2), dtype=dtype, device=x.device)
    p0 = 0
    ragged = bandwidth is not None
    for a, b in groups:
        pg, n, m = a.shape[0], a.shape[1], b.shape[1]
        full = _skewed_view(dq, p0, N, M)[:pg]
        la, rb = _augment(a.to(dtype), True, gamma), _augment(b.to(dtype), False, gamma)
        full[:, :n, :m].copy_(torch.bmm(la, rb.transpose(1, 2)))  # bmm(out=strided) is slower
        full[:, n:, :].fill_(_NEG_INF)
        full[:, :n, m:].fill_(_NEG_INF)
        ragged = ragged or bool((rows[p0:p0 + pg] < n).any()) or bool((cols[p0:p0 + pg] < m).any())
        p0 += pg
    if ragged:
        keep = _band_keep(rows, cols, N, M, bandwidth)
        _skewed_view(dq, 0, N, M).masked_fill_(~keep, _NEG_INF)
    return dq


def _build_cost(x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                bandwidth: Optional[float], divergence: bool) -> torch.Tensor:
    """Frame costs of every pair in a (P, N + 2, M + 2) table (cell (i, j) at [p, i, j],
    1-based), +inf on the border and outside each pair's lengths and band."""
    groups = [(x, y), (x, x), (y, y)] if divergence else [(x, y)]
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    N = max(a.shape[1] for a, _ in groups)
    M = max(b.shape[1] for _, b in groups)
    # in the fused kernels' layout (for "skew" a strided view of a skewed buffer)
    cost = softdtw_triton.cost_table(int(rows.numel()), N, M, dtype, x.device)
    p0 = 0
    ragged = bandwidth is not None
    for a, b in groups:
        pg, n, m = a.shape[0], a.shape[1], b.shape[1]
        la, rb = _augment(a.to(dtype), True, 1.0), _augment(b.to(dtype), False, 1.0)
        cost[p0:p0 + pg, 1:n + 1, 1:m + 1] = torch.bmm(la, rb.transpose(1, 2)).neg_()
        ragged = ragged or bool((rows[p0:p0 + pg] < n).any()) or bool((cols[p0:p0 + pg] < m).any())
        p0 += pg
    if ragged:
        keep = _band_keep(rows, cols, N, M, bandwidth)
        cost[:, 1:N + 1, 1:M + 1].masked_fill_(~keep, float("inf"))
    return cost


def _use_fused(x: torch.Tensor, impl: str) -> bool:
    if impl == "torch":
        return False
    fused = softdtw_triton.available(x.device)
    if impl == "triton" and not fused:
        raise ValueError(f"impl='triton' needs the triton package and a CUDA device (or "
                         f"TRITON_INTERPRET=1 on CPU); tensors are on {x.device}")
    return fused


class _SoftDTWFn(torch.autograd.Function):
    """Soft-DTW values of (x, y) pairs, plus (x, x) and (y, y) if divergence.

    Returns (B,) or (3B,) values; the cost is never stored outside the DP.
    """

    @staticmethod
    def forward(ctx, x, y, x_lens, y_lens, gamma, bandwidth, divergence, fused):
        if divergence:
            rows, cols = torch.cat([x_lens, x_lens, y_lens]), torch.cat([y_lens, x_lens, y_lens])
        else:
            rows, cols = x_lens, y_lens
        ctx.save_for_backward(x, y, rows, cols)
        ctx.args = (gamma, bandwidth, divergence)
        ctx.fused = fused
        if fused:
            c = _build_cost(x, y, rows, cols, bandwidth, divergence)
            r, values = softdtw_triton.forward(c, rows, cols, gamma)
            ctx.tables = (r, c)
            return values.to(x.dtype)
        dq = _build_dq(x, y, rows, cols, gamma, bandwidth, divergence)
        N, M = dq.shape[2] - 2, dq.shape[0] - dq.shape[2] - 1
        q, q_end = _dp_forward(dq, rows, cols, N, M)
        ctx.dq, ctx.q = dq, q
        return (q_end * -gamma).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, y, rows, cols = ctx.saved_tensors
        gamma = ctx.args[0]
        if ctx.fused:
            e_all = softdtw_triton.backward(*ctx.tables, rows, cols, gamma)
            dt = e_all.dtype

            def alignment(p0: int, n: int, m: int) -> torch.Tensor:
                return e_all[p0:p0 + x.shape[0], :n, :m]
        else:
            # The backward recursion overwrites dq in place (one buffer less); a
            # second backward through the same graph rebuilds it.
            dq = ctx.dq if ctx.dq is not None else _build_dq(x, y, rows, cols, *ctx.args)
            ctx.dq = None
            N, M = dq.shape[2] - 2, dq.shape[0] - dq.shape[2] - 1
            log_e = _dp_backward(dq, ctx.q, rows, cols, N, M)
            dt = log_e.dtype

            def alignment(p0: int, n: int, m: int) -> torch.Tensor:
                return torch.exp(_skewed_view(log_e, p0, n, m)[:x.shape[0]])
        B, n, m = x.shape[0], x.shape[1], y.shape[1]
        xd, yd = x.to(dt), y.to(dt)
        # dC/dx_i = 2 (x_i - y_j): gx = 2 (rowsum(E) x - E y), two bmm per term.
        e = alignment(0, n, m).mul_(grad[:B].to(dt).view(-1, 1, 1))
        # (bmm, not baddbmm: CPU baddbmm runs one threaded addmm per pair.)
        gx = torch.addcmul(-torch.bmm(e, yd), e.sum(2, keepdim=True), xd)
        gy = torch.addcmul(-torch.bmm(e.transpose(1, 2), xd), e.sum(1).unsqueeze(2), yd)
        if ctx.args[2]:
            for k, (z, gz, length) in enumerate(((xd, gx, n), (yd, gy, m))):
                sl = grad[(k + 1) * B:(k + 2) * B].to(dt).view(-1, 1, 1)
                # E of a self pair is symmetric (so are C, the band and the DP):
                # both sides move, so twice the one-sided gradient.
                e = alignment((k + 1) * B, length, length).mul_(sl * 2.0)
                gz.sub_(torch.bmm(e, z)).addcmul_(e.sum(2, keepdim=True), z)
        return (gx * 2.0).to(x.dtype), (gy * 2.0).to(y.dtype), None, None, None, None, None, None


def _lengths(lens: Optional[torch.Tensor], b: int, n: int, dev: torch.device) -> torch.Tensor:
    if lens is None:
        return torch.full((b,), n, dtype=torch.long, device=dev)
    lens = torch.as_tensor(lens, device=dev).long()
    if lens.shape != (b,) or bool((lens < 1).any()) or bool((lens > n).any()):
        raise ValueError(f"lengths must be (B,)={b} values in [1, {n}], got {lens.tolist()}")
    return lens


def _zero_padding(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    # Padding frames must be finite: 0 * NaN in the cost gradient would leak.
    if bool((lens == x.shape[1]).all()):
        return x
    keep = torch.arange(x.shape[1], device=x.device).unsqueeze(0) < lens.unsqueeze(1)
    return torch.where(keep.unsqueeze(2), x, x.new_zeros(()))


def _check(gamma: float, bandwidth: Optional[float]) -> None:
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    if bandwidth is not None and bandwidth < 0:
        raise ValueError(f"bandwidth must be >= 0, got {bandwidth}")


def _prep(x, y, x_lens, y_lens) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if x.dim() != 3 or y.dim() != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError("expected x (B,N,D) and y (B,M,D), got "
                         f"{tuple(x.shape)}, {tuple(y.shape)}")
    xl = _lengths(x_lens, x.shape[0], x.shape[1], x.device)
    yl = _lengths(y_lens, y.shape[0], y.shape[1], y.device)
    if x.dtype in (torch.float16, torch.bfloat16):
        x, y = x.float(), y.float()
    return _zero_padding(x, xl), _zero_padding(y, yl), xl, yl


def soft_dtw(x: torch.Tensor, y: torch.Tensor, x_lens: Optional[torch.Tensor] = None,
             y_lens: Optional[torch.Tensor] = None, gamma: float = 1.0,
             bandwidth: Optional[float] = None, impl: str = "auto") -> torch.Tensor:
    """Soft-DTW value (B,) of each pair x[b, :x_lens[b]] vs y[b, :y_lens[b]].

    x: (B, N, D), y: (B, M, D); lengths default to N and M.  bandwidth: the
    Sakoe-Chiba half-width in frames of the longer sequence (module docstring).
    impl: "auto" (the fused Triton kernels on CUDA when triton is installed, else
    the torch path), "torch" or "triton".
    """
    _check(gamma, bandwidth)
    x, y, xl, yl = _prep(x, y, x_lens, y_lens)
    return _SoftDTWFn.apply(x, y, xl, yl, float(gamma), bandwidth, False, _use_fused(x, impl))


def soft_dtw_divergence(x: torch.Tensor, y: torch.Tensor,
                        x_lens: Optional[torch.Tensor] = None,
                        y_lens: Optional[torch.Tensor] = None, gamma: float = 1.0,
                        bandwidth: Optional[float] = None, impl: str = "auto") -> torch.Tensor:
    """sdtw(x, y) - (sdtw(x, x) + sdtw(y, y)) / 2 per pair, shape (B,) (impl: see soft_dtw)."""
    _check(gamma, bandwidth)
    x, y, xl, yl = _prep(x, y, x_lens, y_lens)
    b = x.shape[0]
    v = _SoftDTWFn.apply(x, y, xl, yl, float(gamma), bandwidth, True, _use_fused(x, impl))
    return v[:b] - 0.5 * (v[b:2 * b] + v[2 * b:])


@torch.no_grad()
def expected_alignment(x: torch.Tensor, y: torch.Tensor, x_lens: Optional[torch.Tensor] = None,
                       y_lens: Optional[torch.Tensor] = None, gamma: float = 1.0,
                       bandwidth: Optional[float] = None) -> torch.Tensor:
    """E (B, N, M): the soft alignment of each pair, d sdtw / d C (zero outside the lengths).

    Each row of a hard alignment path has E = 1 on its cells; the soft one spreads that
    mass, so E shows where soft-DTW lets x[i] match y[j] (for diagnostics and plots).
    """
    _check(gamma, bandwidth)
    x, y, xl, yl = _prep(x, y, x_lens, y_lens)
    dq = _build_dq(x, y, xl, yl, float(gamma), bandwidth, False)
    N, M = dq.shape[2] - 2, dq.shape[0] - dq.shape[2] - 1
    q, _ = _dp_forward(dq, xl, yl, N, M)
    log_e = _dp_backward(dq, q, xl, yl, N, M)
    return torch.exp(_skewed_view(log_e, 0, x.shape[1], y.shape[1])[:x.shape[0]]).to(x.dtype)


class SoftDTW(torch.nn.Module):
    """Soft-DTW (or, with divergence=True, the soft-DTW divergence) as a module."""

    def __init__(self, gamma: float = 1.0, bandwidth: Optional[float] = None,
                 divergence: bool = True) -> None:
        super().__init__()
        self.gamma = gamma
        self.bandwidth = bandwidth
        self.divergence = divergence

    def forward(self, x: torch.Tensor, y: torch.Tensor,
                x_lens: Optional[torch.Tensor] = None,
                y_lens: Optional[torch.Tensor] = None) -> torch.Tensor:
        fn = soft_dtw_divergence if self.divergence else soft_dtw
        return fn(x, y, x_lens, y_lens, self.gamma, self.bandwidth)
