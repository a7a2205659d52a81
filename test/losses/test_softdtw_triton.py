"""The fused Triton soft-DTW kernels, run by Triton's interpreter on the CPU.

They must give the torch path's values and gradients (and the plain float64 DP's)
on unequal lengths and with a band, and stay finite at gamma = 0.01 over 2,000
frames. On a GPU the same comparisons run natively (test/gpu/check.sh).
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


def _run(fn, x, y, xl, yl, impl, weights, **kw):
    x = x.detach().clone().requires_grad_()
    y = y.detach().clone().requires_grad_()
    v = fn(x, y, xl, yl, impl=impl, **kw)
    gx, gy = torch.autograd.grad((v * weights).sum(), (x, y))
    return v.detach(), gx, gy


@pytest.mark.parametrize("divergence", [False, True])
@pytest.mark.parametrize("band", [None, 1.5])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_matches_torch_path(interpreted, divergence, band, dtype):
    assert softdtw_triton.available(torch.device("cpu"))
    x, y, xl, yl = _batch(3, dtype=dtype)
    fn = softdtw.soft_dtw_divergence if divergence else softdtw.soft_dtw
    w = torch.tensor([1.0, -2.0, 0.5], dtype=dtype)
    want = _run(fn, x, y, xl, yl, "torch", w, gamma=0.2, bandwidth=band)
    got = _run(fn, x, y, xl, yl, "triton", w, gamma=0.2, bandwidth=band)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=1e-3, atol=1e-3)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **tol)


def test_fused_matches_plain_float64_dp(interpreted):
    x, y, xl, yl = _batch(4)
    v, gx, gy = _run(softdtw.soft_dtw, x, y, xl, yl, "triton", torch.ones(3, dtype=x.dtype),
                     gamma=0.1, bandwidth=2.5)
    ref = torch.stack([_ref_sdtw(x[b, :xl[b]], y[b, :yl[b]], 0.1, 2.5) for b in range(3)])
    rx, ry = torch.autograd.grad(ref.sum(), (x, y))
    torch.testing.assert_close(v, ref.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gx, rx, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(gy, ry, rtol=1e-8, atol=1e-10)


def test_fused_long_sequences_small_gamma_stay_finite(interpreted):
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


def test_triton_impl_refused_where_it_cannot_run(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, y, xl, yl = _batch(5)
    with pytest.raises(ValueError, match="impl='triton'"):
        softdtw.soft_dtw(x, y, xl, yl, impl="triton")
