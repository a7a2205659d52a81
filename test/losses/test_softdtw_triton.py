"""The fused Triton soft-DTW kernels, run by Triton's interpreter on the CPU.

They must give the torch path's values and gradients (and the plain float64 DP's)
on unequal lengths and with a band, and stay finite at gamma = 0.01 over 2,000
frames, in both table layouts ("rows", the default, and "skew"), which must agree
with each other.  On a GPU the same comparisons run natively (test/gpu/check.sh).
"""
import importlib

import pytest
import torch

pytest.importorskip("triton")  # a third-party package, installed by tools/setup.sh

from bljust.losses import softdtw, softdtw_triton  # noqa: E402

from test_softdtw import _batch, _ref_sdtw  # noqa: E402


@pytest.fixture(scope="module")
def interpreted():
    """Re-imports the kernels under TRITON_INTERPRET=1; restores them afterwards."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TRITON_INTERPRET", "1")
    importlib.reload(softdtw_triton)
    yield
    mp.undo()
    importlib.reload(softdtw_triton)


@pytest.fixture(params=softdtw_triton.LAYOUTS)
def layout(request, interpreted, monkeypatch):
    """Runs a test with each table layout of the fused kernels."""
    monkeypatch.setattr(softdtw_triton, "LAYOUT", request.param)
    return request.param


def _run(fn, x, y, xl, yl, impl, weights, **kw):
    x = x.detach().clone().requires_grad_()
    y = y.detach().clone().requires_grad_()
    v = fn(x, y, xl, yl, impl=impl, **kw)
    gx, gy = torch.autograd.grad((v * weights).sum(), (x, y))
    return v.detach(), gx, gy


@pytest.mark.parametrize("divergence", [False, True])
@pytest.mark.parametrize("band", [None, 1.5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_matches_torch_path(layout, divergence, band, dtype):
    assert softdtw_triton.available(torch.device("cpu"))
    x, y, xl, yl = _batch(3, dtype=dtype)
    fn = softdtw.soft_dtw_divergence if divergence else softdtw.soft_dtw
    w = torch.tensor([1.0, -2.0, 0.5], dtype=dtype)
    want = _run(fn, x, y, xl, yl, "torch", w, gamma=0.2, bandwidth=band)
    got = _run(fn, x, y, xl, yl, "triton", w, gamma=0.2, bandwidth=band)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=1e-3, atol=1e-3)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **tol)


def test_fused_matches_plain_float64_dp(layout):
    x, y, xl, yl = _batch(4)
    v, gx, gy = _run(softdtw.soft_dtw, x, y, xl, yl, "triton", torch.ones(3, dtype=x.dtype),
                     gamma=0.1, bandwidth=2.5)
    ref = torch.stack([_ref_sdtw(x[b, :xl[b]], y[b, :yl[b]], 0.1, 2.5) for b in range(3)])
    rx, ry = torch.autograd.grad(ref.sum(), (x, y))
    torch.testing.assert_close(v, ref.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gx, rx, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(gy, ry, rtol=1e-8, atol=1e-10)


def test_fused_long_sequences_small_gamma_stay_finite(layout):
    """gamma = 0.01 over 2,000 x 1,800 frames in float32: finite, and as close to
    the float64 result as the torch path's float32 is (the table's values reach
    about 3,000, so float32 rounding alone moves the gradient by ~1e-1)."""
    g = torch.Generator().manual_seed(6)
    x = torch.nn.functional.normalize(torch.randn(1, 2000, 8, generator=g), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(1, 1800, 8, generator=g), dim=-1)
    one = torch.ones(1)
    got = _run(softdtw.soft_dtw, x, y, None, None, "triton", one, gamma=0.01)
    f32 = _run(softdtw.soft_dtw, x, y, None, None, "torch", one, gamma=0.01)
    f64 = _run(softdtw.soft_dtw, x.double(), y.double(), None, None, "torch", one.double(), gamma=0.01)
    assert all(torch.isfinite(t).all() for t in got)
    assert got[1].abs().sum() > 0 and got[2].abs().sum() > 0
    for a, b, ref in zip(got, f32, f64):
        err, err_torch = (a.double() - ref).abs().max(), (b.double() - ref).abs().max()
        assert err <= 3 * err_torch + 1e-6, (err, err_torch)


def _with_layout(monkeypatch, layout, *args, **kw):
    monkeypatch.setattr(softdtw_triton, "LAYOUT", layout)
    return _run(*args, **kw)


@pytest.mark.parametrize("n, m", [(7, 12), (12, 7), (9, 9)])  # lanes = rows, columns (transposed), rows
@pytest.mark.parametrize("divergence", [False, True])
def test_skew_layout_matches_rows_layout(interpreted, monkeypatch, n, m, divergence):
    """Unequal lengths per pair and a band; with N > M the skew layout runs transposed."""
    g = torch.Generator().manual_seed(n * 100 + m)
    x = torch.randn(3, n, 3, generator=g, dtype=torch.float64)
    y = torch.randn(3, m, 3, generator=g, dtype=torch.float64)
    xl, yl = torch.tensor([n, n - 3, 4]), torch.tensor([m - 2, m, 5])
    fn = softdtw.soft_dtw_divergence if divergence else softdtw.soft_dtw
    w = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    for band in (None, 2.0):
        rows = _with_layout(monkeypatch, "rows", fn, x, y, xl, yl, "triton", w, gamma=0.3, bandwidth=band)
        skew = _with_layout(monkeypatch, "skew", fn, x, y, xl, yl, "triton", w, gamma=0.3, bandwidth=band)
        for a, b in zip(skew, rows):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, m", [(6, 10), (10, 6)])
def test_skew_kernels_on_a_plain_cost_table(interpreted, n, m):
    """forward/backward directly: R's end values and E agree between the layouts, E is
    zero outside the lengths, the cost is left as it was, and a cost_table view is
    used without a copy."""
    g = torch.Generator().manual_seed(3)
    P = 3
    rows, cols = torch.tensor([n, n - 2, 3]), torch.tensor([m, 4, m - 1])
    cost = torch.full((P, n + 2, m + 2), float("inf"), dtype=torch.float64)
    for p in range(P):
        cost[p, 1:rows[p] + 1, 1:cols[p] + 1] = torch.rand(int(rows[p]), int(cols[p]), generator=g,
                                                           dtype=torch.float64)
    cost[1, 1, 3] = float("inf")  # a cell off the path set (as a band would)
    kept = cost.clone()
    r, v_rows = softdtw_triton.forward(cost, rows, cols, 0.2, layout="rows")
    e_rows = softdtw_triton.backward(r, cost, rows, cols, 0.2)
    d, v_skew = softdtw_triton.forward(cost, rows, cols, 0.2, layout="skew")
    e_skew = softdtw_triton.backward(d, cost, rows, cols, 0.2, layout="skew")
    assert torch.equal(cost, kept)
    torch.testing.assert_close(v_skew, v_rows, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(e_skew, e_rows, rtol=1e-12, atol=1e-12)
    for p in range(P):
        assert not e_skew[p, rows[p]:].any() and not e_skew[p, :, cols[p]:].any()
    assert e_skew[1, 0, 2] == 0 and e_skew[0, n - 1, m - 1] == 1
    view = softdtw_triton.cost_table(P, n, m, torch.float64, torch.device("cpu"), layout="skew")
    view.copy_(cost)
    assert softdtw_triton._skewed(view).data_ptr() == view.data_ptr()
    d2, v2 = softdtw_triton.forward(view, rows, cols, 0.2, layout="skew")
    torch.testing.assert_close(v2, v_skew, rtol=0, atol=0)
    torch.testing.assert_close(softdtw_triton.backward(d2, view, rows, cols, 0.2), e_skew, rtol=0, atol=0)
    with pytest.raises(ValueError, match="layout"):
        softdtw_triton.backward(d2, view, rows, cols, 0.2, layout="rows")
    with pytest.raises(ValueError, match="layout"):
        softdtw_triton.forward(view, rows, cols, 0.2, layout="diagonal")


def test_triton_impl_refused_where_it_cannot_run(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, y, xl, yl = _batch(5)
    with pytest.raises(ValueError, match="impl='triton'"):
        softdtw.soft_dtw(x, y, xl, yl, impl="triton")


def test_using_sets_the_default_layout_for_a_block_and_restores_it():
    default = softdtw_triton.LAYOUT
    other = next(lay for lay in softdtw_triton.LAYOUTS if lay != default)
    with pytest.raises(RuntimeError):
        with softdtw_triton.using(other):
            assert softdtw_triton.LAYOUT == other
            raise RuntimeError("a failing run inside the block")
    assert softdtw_triton.LAYOUT == default
    with pytest.raises(ValueError, match="layout"):
        with softdtw_triton.using("diagonal"):
            pass
    assert softdtw_triton.LAYOUT == default
