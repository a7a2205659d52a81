import math

import pytest
import torch

from bljust.data.pairs import SPEEDS, PairMaker, perturb, pitch_shift, speed_perturb

SR = 16000


def tone(freq: float = 440.0, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(SR * seconds), dtype=torch.float32) / SR
    return 0.5 * torch.sin(2 * math.pi * freq * t)


def peak_hz(x: torch.Tensor) -> float:
    """FFT peak of the middle part (edges carry the stretch's transients), parabolic refinement."""
    n = x.numel()
    mid = x[n // 8: n - n // 8]
    spec = torch.fft.rfft(mid * torch.hann_window(mid.numel())).abs()
    k = int(spec[1:].argmax()) + 1
    a, b, c = (float(v) for v in torch.log(spec[k - 1: k + 2] + 1e-12))
    k = k + 0.5 * (a - c) / (a - 2 * b + c)
    return k * SR / mid.numel()


@pytest.mark.parametrize("speed", [0.8, 0.9, 1.0, 1.1, 1.15])
def test_speed_perturb_changes_length_and_pitch_together(speed):
    x = tone(440.0)
    y = speed_perturb(x, speed)
    assert abs(y.numel() - x.numel() / speed) <= 1
    assert peak_hz(y) == pytest.approx(440.0 * speed, rel=0.01)


@pytest.mark.parametrize("semitones", [2.0, -2.0])
def test_pitch_shift_keeps_length_moves_pitch(semitones):
    x = tone(440.0)
    y = pitch_shift(x, semitones)
    assert y.numel() == x.numel()
    ratio = peak_hz(y) / 440.0
    # the resampling ratio is a small fraction (9/8, 8/9): a few cents from 2^(2/12)
    assert 1200 * abs(math.log2(ratio) - semitones / 12) < 15
    # the loudness survives the phase vocoder (a vocoder without phase locking loses ~40%)
    assert y[2000:-2000].abs().max() == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize("speed,semitones", [(0.9, 2.0), (1.1, -2.0), (1.2, 2.0)])
def test_perturb_composes_speed_and_pitch(speed, semitones):
    x = tone(300.0)
    y = perturb(x, speed, semitones)
    assert abs(y.numel() - x.numel() / speed) <= 2
    assert peak_hz(y) == pytest.approx(300.0 * speed * 2 ** (semitones / 12), rel=0.01)


def test_pair_maker_seeded_and_random_order():
    x = torch.randn(4000)
    a = PairMaker("wavlm", seed=7)
    b = PairMaker("wavlm", seed=7)
    infos = []
    for _ in range(12):
        xa, xb, info = a(x)
        ya, yb, info2 = b(x)
        assert info == info2 and torch.equal(xa, ya) and torch.equal(xb, yb)
        assert info["speed"] in SPEEDS["wavlm"] and abs(info["semitones"]) == 2.0
        # the clean utterance is one member of the pair, on the side `swapped` says
        assert torch.equal(xb if info["swapped"] else xa, x)
        infos.append(info)
    assert {i["swapped"] for i in infos} == {True, False}
    assert {i["semitones"] for i in infos} == {2.0, -2.0}
    assert len({i["speed"] for i in infos}) > 1
    assert [PairMaker("wavlm", seed=8).draw() for _ in range(12)] != infos


def test_speed_sets_and_explicit_list():
    assert PairMaker("hubert").speeds == (0.9, 1.0, 1.1)
    assert PairMaker([1.1]).draw()["speed"] == 1.1
    with pytest.raises(ValueError):
        PairMaker("nope")
    with pytest.raises(ValueError):
        PairMaker([0.0])
