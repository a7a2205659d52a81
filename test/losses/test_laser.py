import pytest
import torch

from bljust.losses.laser import LaserLoss, idm_loss
from bljust.losses.softdtw import soft_dtw_divergence


def _idm_loop(z, sigma, lam):
    n = z.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            d = torch.linalg.norm(z[i] - z[j]).item()
            w = (i - j) ** 2 + 1
            if abs(i - j) > sigma:
                total += w * max(0.0, lam - d)
            else:
                total += d / w
    return total / n ** 2


def _batch(seed, b=3, t=9, d=5):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, t, d, generator=g, dtype=torch.float64)
    z = torch.nn.functional.normalize(z, dim=-1)
    return z, torch.tensor([t, 6, 2][:b])


@pytest.mark.parametrize("sigma,lam", [(0, 1.1), (0, 1.0), (2, 1.3)])
def test_idm_matches_double_loop(sigma, lam):
    z, lens = _batch(0)
    got = idm_loss(z, lens, sigma=sigma, lam=lam)
    ref = torch.tensor([_idm_loop(z[b, :lens[b]], sigma, lam) for b in range(3)],
                       dtype=torch.float64)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_idm_gradient_finite_with_repeated_frames():
    z, lens = _batch(1)
    z = z.clone()
    z[0, 3] = z[0, 4]  # identical frames: ||.|| has no gradient at 0
    z.requires_grad_()
    (g,) = torch.autograd.grad(idm_loss(z, lens, 0, 1.1).sum(), (z,))
    assert torch.isfinite(g).all()
    assert (g[1, 6:] == 0).all()  # padding gets nothing


def test_laser_loss_is_divergence_plus_weighted_idm_and_ignores_padding():
    z, zl = _batch(2)
    z2, z2l = _batch(3, t=11)
    z2l = torch.tensor([11, 8, 3])
    loss = LaserLoss(alpha=0.4, sigma=0, lam=1.1, gamma=0.1)
    got = loss(z, zl, z2, z2l)
    want = (soft_dtw_divergence(z, z2, zl, z2l, gamma=0.1)
            + 0.4 * (idm_loss(z, zl, 0, 1.1) + idm_loss(z2, z2l, 0, 1.1))).mean()
    torch.testing.assert_close(got, want)
    padded = torch.cat([z, torch.full((3, 4, 5), 7.0, dtype=z.dtype)], 1)
    torch.testing.assert_close(loss(padded, zl, z2, z2l), got)


def test_laser_loss_trains_a_projection():
    torch.manual_seed(0)
    proj = torch.nn.Linear(6, 4)
    x = torch.randn(2, 12, 6)
    x2 = x[:, ::2] + 0.05 * torch.randn(2, 6, 6)  # a "sped-up" copy
    lens, lens2 = torch.tensor([12, 10]), torch.tensor([6, 5])
    loss_fn = LaserLoss(alpha=0.15, lam=1.0, gamma=0.1)
    opt = torch.optim.SGD(proj.parameters(), lr=0.05)

    def loss():
        z = torch.nn.functional.normalize(proj(x), dim=-1)
        z2 = torch.nn.functional.normalize(proj(x2), dim=-1)
        return loss_fn(z, lens, z2, lens2)

    first = loss().item()
    for _ in range(10):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert torch.isfinite(value)
    assert loss().item() < first


def test_laser_loss_equals_a_direct_float64_computation():
    """D_gamma + alpha (IDM + IDM') from plain loops: the soft-DTW recursion cell by cell
    and the IDM double sum, in float64, pair by pair."""
    from test_softdtw import _ref_sdtw

    z, zl = _batch(4)
    z2, _ = _batch(5, t=7)
    z2l = torch.tensor([7, 7, 4])
    alpha, lam, gamma = 0.4, 1.1, 0.1
    got = LaserLoss(alpha=alpha, sigma=0, lam=lam, gamma=gamma)(z, zl, z2, z2l)
    per = []
    for b in range(3):
        x, y = z[b, :zl[b]], z2[b, :z2l[b]]
        div = _ref_sdtw(x, y, gamma) - 0.5 * (_ref_sdtw(x, x, gamma) + _ref_sdtw(y, y, gamma))
        per.append(float(div) + alpha * (_idm_loop(x, 0, lam) + _idm_loop(y, 0, lam)))
    torch.testing.assert_close(got, torch.tensor(sum(per) / 3, dtype=torch.float64), rtol=1e-6, atol=1e-6)
