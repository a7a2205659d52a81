import math

import pytest
import torch

from bljust.losses.softdtw import SoftDTW, soft_dtw, soft_dtw_divergence


def _ref_sdtw(x, y, gamma, band=None):
    """Plain O(nm) soft-DTW of one pair, torch scalars so autograd gives E."""
    n, m = x.shape[0], y.shape[0]
    inf = torch.tensor(math.inf, dtype=x.dtype)
    big = max(n, m)
    r = {(0, 0): torch.tensor(0.0, dtype=x.dtype)}
    for i in range(1, n + 1):
        r[i, 0] = inf
    for j in range(1, m + 1):
        r[0, j] = inf
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if band is not None:
                w = max(band, big / min(n, m))
                if abs(i * big / n - j * big / m) > w + 1e-9:
                    r[i, j] = inf
                    continue
            prev = torch.stack([r[i - 1, j], r[i, j - 1], r[i - 1, j - 1]])
            cost = ((x[i - 1] - y[j - 1]) ** 2).sum()
            r[i, j] = cost - gamma * torch.logsumexp(-prev / gamma, 0)
    return r[n, m]


def _batch(seed, b=3, n=7, m=9, d=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=g, dtype=dtype)
    y = torch.randn(b, m, d, generator=g, dtype=dtype)
    xl = torch.tensor([n, 4, 2][:b])
    yl = torch.tensor([5, m, 3][:b])
    return x.requires_grad_(), y.requires_grad_(), xl, yl


@pytest.mark.parametrize("band", [None, 1.0, 2.5])
@pytest.mark.parametrize("gamma", [1.0, 0.1])
def test_value_and_gradient_match_plain_dp(band, gamma):
    x, y, xl, yl = _batch(0)
    v = soft_dtw(x, y, xl, yl, gamma=gamma, bandwidth=band)
    gx, gy = torch.autograd.grad(v.sum(), (x, y))
    ref = torch.stack([_ref_sdtw(x[b, :xl[b]], y[b, :yl[b]], gamma, band) for b in range(3)])
    rx, ry = torch.autograd.grad(ref.sum(), (x, y))
    torch.testing.assert_close(v, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gx, rx, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(gy, ry, rtol=1e-8, atol=1e-10)


def test_divergence_matches_plain_dp_with_band():
    x, y, xl, yl = _batch(1)
    v = soft_dtw_divergence(x, y, xl, yl, gamma=0.3, bandwidth=1.5)
    gx, gy = torch.autograd.grad((v * torch.tensor([1.0, -2.0, 0.5])).sum(), (x, y))
    ref = []
    for b in range(3):
        xb, yb = x[b, :xl[b]], y[b, :yl[b]]
        ref.append(_ref_sdtw(xb, yb, 0.3, 1.5)
                   - 0.5 * (_ref_sdtw(xb, xb, 0.3, 1.5) + _ref_sdtw(yb, yb, 0.3, 1.5)))
    ref = torch.stack(ref)
    rx, ry = torch.autograd.grad((ref * torch.tensor([1.0, -2.0, 0.5])).sum(), (x, y))
    torch.testing.assert_close(v, ref)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gy, ry)


@pytest.mark.parametrize("band", [None, 2.0])
def test_gradcheck(band):
    x, y, xl, yl = _batch(2, n=5, m=6, d=3)
    assert torch.autograd.gradcheck(
        lambda a, b: soft_dtw(a, b, xl, yl, gamma=0.5, bandwidth=band), (x, y))
    assert torch.autograd.gradcheck(
        lambda a, b: soft_dtw_divergence(a, b, xl, yl, gamma=0.5, bandwidth=band), (x, y))


def test_divergence_zero_for_identical_and_nonnegative():
    x, y, xl, yl = _batch(3, dtype=torch.float32)
    same = soft_dtw_divergence(x, x, xl, xl, gamma=0.1)
    torch.testing.assert_close(same, torch.zeros(3), atol=1e-4, rtol=0)
    for seed in range(5):
        x, y, xl, yl = _batch(10 + seed, dtype=torch.float32)
        assert (soft_dtw_divergence(x, y, xl, yl, gamma=0.5) >= -1e-4).all()


def test_padding_is_ignored_even_if_garbage():
    x, y, xl, yl = _batch(4)
    alone = soft_dtw_divergence(x[1:2, :4], y[1:2], gamma=0.2)
    xp = x.detach().clone()
    xp[1, 4:] = float("nan")  # padding content must not matter
    xp.requires_grad_()
    batched = soft_dtw_divergence(xp, y, xl, yl, gamma=0.2)
    torch.testing.assert_close(batched[1], alone[0])
    (gx,) = torch.autograd.grad(batched.sum(), (xp,))
    assert torch.isfinite(gx).all()
    assert (gx[1, 4:] == 0).all()


def test_band_restricts_paths_and_wide_band_is_no_band():
    x, y, xl, yl = _batch(5)
    free = soft_dtw(x, y, xl, yl, gamma=0.1)
    assert (soft_dtw(x, y, xl, yl, gamma=0.1, bandwidth=1.0) >= free - 1e-9).all()
    torch.testing.assert_close(soft_dtw(x, y, xl, yl, gamma=0.1, bandwidth=100.0), free)


def test_long_sequences_small_gamma_float32_stay_finite():
    g = torch.Generator().manual_seed(6)
    x = torch.nn.functional.normalize(torch.randn(1, 2000, 8, generator=g), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(1, 1800, 8, generator=g), dim=-1)
    x.requires_grad_()
    y.requires_grad_()
    v = soft_dtw_divergence(x, y, gamma=0.01)
    gx, gy = torch.autograd.grad(v.sum(), (x, y))
    assert torch.isfinite(v).all() and (v > 0).all()
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()
    assert gx.abs().sum() > 0 and gy.abs().sum() > 0


def test_module_and_bad_lengths():
    x, y, xl, yl = _batch(7)
    mod = SoftDTW(gamma=0.3, bandwidth=None, divergence=True)
    torch.testing.assert_close(mod(x, y, xl, yl), soft_dtw_divergence(x, y, xl, yl, gamma=0.3))
    with pytest.raises(ValueError):
        soft_dtw(x, y, torch.tensor([8, 1, 1]), yl)
    with pytest.raises(ValueError):
        soft_dtw(x, y, xl, yl, gamma=0.0)
    with pytest.raises(ValueError):
        soft_dtw_divergence(x, y, xl, yl, bandwidth=-1.0)


def test_half_precision_inputs_run_in_float32():
    x, y, xl, yl = _batch(8, dtype=torch.float32)
    want = soft_dtw_divergence(x, y, xl, yl, gamma=0.5)
    got = soft_dtw_divergence(x.detach().bfloat16(), y.detach().bfloat16(), xl, yl, gamma=0.5)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0.05, atol=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x, y, xl, yl = _batch(9)
    v = soft_dtw_divergence(x, y, xl, yl, gamma=0.1, bandwidth=2.0)
    gx, gy = torch.autograd.grad(v.sum(), (x, y))
    xc, yc = x.detach().cuda().requires_grad_(), y.detach().cuda().requires_grad_()
    vc = soft_dtw_divergence(xc, yc, xl.cuda(), yl.cuda(), gamma=0.1, bandwidth=2.0)
    gxc, gyc = torch.autograd.grad(vc.sum(), (xc, yc))
    torch.testing.assert_close(vc.cpu(), v)
    torch.testing.assert_close(gxc.cpu(), gx)
    torch.testing.assert_close(gyc.cpu(), gy)
