"""LASER as a lower-level loss on the fbank model: it trains, padding gets no gradient,
and the fbank-domain perturbation moves spectra and lengths the way speed/pitch do."""
import pytest
import torch

from bljust.losses.laser_lower import LaserLowerLoss, mel_centres, resample_time, warp_frequency
from bljust.nets.asr_model import build_asr_model


pytestmark = pytest.mark.usefixtures("one_thread")

def tiny_model(encoder, dim=20):
    torch.manual_seed(0)
    enc = dict(encoder, impl="bljust", subsampling=4, conv_norm="layer_norm")
    return build_asr_model({"encoder": enc, "specaug": None}, dim, 10)


def batch(dim=20):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 60, dim, generator=g).cumsum(1) * 0.3
    lens = torch.tensor([60, 44])
    return feats, lens


def test_loss_decreases_on_a_tiny_batch(tiny_conformer):
    model = tiny_model(tiny_conformer)
    crit = LaserLowerLoss(model.encoder.output_dim, proj_dim=16)
    opt = torch.optim.Adam(list(model.parameters()) + list(crit.parameters()), lr=3e-3)
    feats, lens = batch()
    losses = []
    for _ in range(25):
        torch.manual_seed(5)  # the same perturbation every step: a pure optimisation check
        loss, stats = crit(model, feats, lens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(stats["laser"])
    assert losses[-1] < 0.8 * losses[0], losses


def test_padding_gets_no_gradient(tiny_conformer):
    model = tiny_model(tiny_conformer)
    crit = LaserLowerLoss(model.encoder.output_dim, proj_dim=16)
    feats, lens = batch()
    feats.requires_grad_(True)
    loss, _ = crit(model, feats, lens)
    loss.backward()
    assert feats.grad[1, 44:].abs().max() == 0
    assert feats.grad[1, :44].abs().max() > 0


def test_perturbation_changes_length_and_shifts_spectrum_up():
    d = 40
    x = torch.zeros(50, d)
    x[:, 10] = 1.0  # energy in one bin
    up = warp_frequency(x, 2 ** (2 / 12))
    assert up[:, 10:].sum(1).mean() > 0.99 and up.argmax(1).float().mean() > 10  # moved to higher bins
    assert resample_time(x, 45).shape == (45, d)
    c = mel_centres(80)
    assert 20 < float(c[0]) < float(c[-1]) < 8000
    crit = LaserLowerLoss(8, speeds=[0.8])
    y, lens = crit.perturb(torch.randn(1, 40, d), torch.tensor([40]))
    assert int(lens[0]) == 50 and y.shape == (1, 50, d)
