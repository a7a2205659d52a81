"""Perturbed pairs for LASER: x' = pitch_shift(speed_perturb(x, s), +-2 semitones).

Speed perturbation resamples like `sox speed` (tempo and pitch change together).
Pitch shift keeps the duration: resample by 2^(n/12), then stretch back with a
phase-locked phase vocoder. Resampling ratios are small fractions p/q because
torchaudio's polyphase resampler slows down with p and q: torchaudio's own
pitch_shift resamples 17959 -> 16000 Hz for +2 semitones (coprime) and took 12-32 s
for a 10 s utterance here; 9/8 (4 cents off 2^(2/12)) makes the whole shift < 0.1 s.
"""
from __future__ import annotations

import math
import random
from fractions import Fraction
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
import torchaudio.functional as AF

SPEEDS: Dict[str, Tuple[float, ...]] = {
    "hubert": (0.9, 1.0, 1.1),
    "wavlm": (0.8, 0.85, 0.9, 1.0, 1.1, 1.15, 1.2),
}


def _fraction(x: float, max_den: int) -> Tuple[int, int]:
    f = Fraction(x).limit_denominator(max_den)
    return f.numerator, f.denominator


def speed_perturb(wav: torch.Tensor, speed: float, max_den: int = 100) -> torch.Tensor:
    """Plays `wav` `speed` times faster: length / speed, every frequency * speed."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    if speed == 1.0:
        return wav
    p, q = _fraction(speed, max_den)
    # reading the signal as if sampled at p and writing it at q shortens it by p/q
    return AF.resample(wav, orig_freq=p, new_freq=q)


def _nearest_peak(mag: torch.Tensor) -> torch.Tensor:
    """For every bin of every frame (F, J), the index of the nearest spectral peak
    (itself when a frame has no peak, e.g. digital silence)."""
    F_, J = mag.shape
    left = torch.nn.functional.pad(mag[:-1], (0, 0, 1, 0), value=-1.0)
    right = torch.nn.functional.pad(mag[1:], (0, 0, 0, 1), value=-1.0)
    peak = (mag >= left) & (mag > right)
    idx = torch.arange(F_, device=mag.device)[:, None].expand(F_, J)
    big = F_ * 4
    lp = torch.where(peak, idx, torch.full_like(idx, -big)).cummax(0).values
    rp = torch.where(peak, idx, torch.full_like(idx, big)).flip(0).cummin(0).values.flip(0)
    owner = torch.where((idx - lp) <= (rp - idx), lp, rp)
    return torch.where(owner.abs() >= big, idx, owner)


def time_stretch(wav: torch.Tensor, length: int, n_fft: int = 512, hop: Optional[int] = None) -> torch.Tensor:
    """Phase-vocoder stretch of a 1-D signal to `length` samples, pitch kept.

    Identity phase locking (Laroche & Dolson): only spectral peaks accumulate phase
    from frame to frame; the bins around a peak keep their analysed phase offset to
    it. A plain vocoder (torchaudio's phase_vocoder) lets errors of each bin drift
    apart, which smears the phase across bins and loses about 40% of a pure tone's
    amplitude when slowing down."""
    if wav.dim() != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(wav.shape)}")
    hop = hop or n_fft // 4
    if wav.size(-1) == length:
        return wav
    if wav.size(-1) <= n_fft // 2:
        raise ValueError(f"waveform of {wav.size(-1)} samples is too short to stretch (n_fft={n_fft})")
    window = torch.hann_window(n_fft, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(wav, n_fft, hop, window=window, return_complex=True)  # (F, N)
    n = spec.size(1)
    rate = wav.size(-1) / length
    steps = torch.arange(0, n, rate, device=wav.device, dtype=wav.dtype)
    i0 = steps.long().clamp(max=n - 1)
    i1 = (i0 + 1).clamp(max=n - 1)
    alpha = (steps - i0.to(steps.dtype))[None, :]
    mag_all, ang_all = spec.abs(), spec.angle()
    mag = (1 - alpha) * mag_all[:, i0] + alpha * mag_all[:, i1]
    ang0, ang1 = ang_all[:, i0], ang_all[:, i1]
    advance = torch.linspace(0, math.pi * hop, spec.size(0), device=wav.device, dtype=wav.dtype)[:, None]
    dphi = ang1 - ang0 - advance
    dphi = dphi - 2 * math.pi * torch.round(dphi / (2 * math.pi)) + advance  # phase advance per hop, per bin
    owner = _nearest_peak(mag)
    out = torch.empty_like(mag)
    out[:, 0] = ang0[:, 0]
    for j in range(1, mag.size(1)):
        peak_phase = out[:, j - 1] + dphi[:, j - 1]
        o = owner[:, j]
        out[:, j] = peak_phase[o] + ang0[:, j] - ang0[o, j]
    return torch.istft(torch.polar(mag, out), n_fft, hop, window=window, length=length)


def pitch_shift(wav: torch.Tensor, semitones: float, max_den: int = 16, n_fft: int = 512) -> torch.Tensor:
    """Moves every frequency by 2^(semitones/12) (to the nearest fraction with
    denominator <= max_den) and keeps the length."""
    if semitones == 0:
        return wav
    shifted = speed_perturb(wav, 2.0 ** (semitones / 12.0), max_den=max_den)
    return time_stretch(shifted, wav.size(-1), n_fft=n_fft)


def perturb(wav: torch.Tensor, speed: float, semitones: float, max_den: int = 16) -> torch.Tensor:
    return pitch_shift(speed_perturb(wav, speed), semitones, max_den=max_den)


class PairMaker:
    """Draws (x, x') pairs: speed from `speeds` ('hubert', 'wavlm' or a list),
    semitone sign at random, the pair's order at random. Seeded, so a run repeats."""

    def __init__(self, speeds: Union[str, Sequence[float]] = "hubert", semitones: float = 2.0,
                 seed: int = 0, max_den: int = 16) -> None:
        if isinstance(speeds, str):
            if speeds not in SPEEDS:
                raise ValueError(f"unknown speed set {speeds!r}; known: {sorted(SPEEDS)} or a list of floats")
            speeds = SPEEDS[speeds]
        self.speeds = tuple(float(s) for s in speeds)
        if not self.speeds or any(s <= 0 for s in self.speeds):
            raise ValueError(f"speeds must be positive, got {self.speeds}")
        self.semitones = float(semitones)
        self.max_den = max_den
        self.rng = random.Random(seed)

    def reseed(self, seed: int) -> None:
        """DataLoader workers hold copies of one maker: give each its own stream."""
        self.rng = random.Random(seed)

    def draw(self) -> Dict[str, Any]:
        """The random choices for one pair (kept apart so callers can log or replay them)."""
        return {"speed": self.rng.choice(self.speeds),
                "semitones": self.semitones * self.rng.choice((-1.0, 1.0)),
                "swapped": bool(self.rng.random() < 0.5)}

    def __call__(self, wav: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, Any]]:
        if wav.dim() != 1:
            raise ValueError(f"expected a 1-D waveform, got shape {tuple(wav.shape)}")
        info = self.draw()
        other = perturb(wav, info["speed"], info["semitones"], self.max_den)
        a, b = (other, wav) if info["swapped"] else (wav, other)
        return a, b, info
