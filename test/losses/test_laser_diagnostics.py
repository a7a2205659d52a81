"""LASER's diagnostics flag a collapsed representation and measure alignments off the diagonal."""
import torch
import torch.nn.functional as F

from bljust.losses.laser_diagnostics import (alignment_deviation, collapsed, laser_diagnostics,
                                             representation_stats)


def _healthy(seed=0, b=2, t=60, d=16):
    g = torch.Generator().manual_seed(seed)
    # a random walk: smooth in time like speech features, different far apart
    z = torch.cumsum(torch.randn(b, t, d, generator=g) * 0.3, dim=1) + torch.randn(b, 1, d, generator=g)
    return F.normalize(z, dim=-1)


def test_healthy_representation_is_not_flagged():
    z = _healthy()
    st = representation_stats(z, torch.tensor([60, 45]))
    assert st["cos_near"] > st["cos_far"]
    assert st["erank"] > 3
    assert not collapsed(st)


def test_collapsed_representation_is_flagged():
    g = torch.Generator().manual_seed(1)
    one = F.normalize(torch.randn(1, 1, 16, generator=g), dim=-1)
    z = F.normalize(one.expand(2, 60, 16) + 1e-4 * torch.randn(2, 60, 16, generator=g), dim=-1)
    st = representation_stats(z, torch.tensor([60, 45]))
    assert st["cos_far"] > 0.99 and st["var"] < 1e-6
    assert collapsed(st)
    # a rank-one collapse (frames on one line, not one point) is flagged too
    line = one * torch.linspace(-1, 1, 60).view(1, 60, 1)
    assert collapsed(representation_stats(line.expand(2, 60, 16).contiguous()))


def test_alignment_deviation_zero_for_identity_and_positive_for_a_shift():
    z = _healthy(2, b=1, t=50)
    assert alignment_deviation(z, z, gamma=0.01) < 0.02
    shifted = torch.cat([z[:, 10:], z[:, -1:].expand(1, 10, -1)], dim=1)
    assert alignment_deviation(z, shifted, gamma=0.01) > 0.05


def test_laser_diagnostics_has_every_statistic():
    z = _healthy(3)
    z2 = z[:, ::2]
    lens, lens2 = torch.tensor([60, 50]), torch.tensor([30, 25])
    st = laser_diagnostics(z, lens, z2, lens2)
    assert set(st) == {"cos_near", "cos_far", "var", "erank", "diag_dev_id", "diag_dev_pair"}
    assert st["diag_dev_id"] < st["diag_dev_pair"] or st["diag_dev_pair"] < 0.1
