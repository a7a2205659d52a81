"""LASER as a BL-JUST lower-level loss on an fbank (Conformer-CTC) model.

The waveform perturbation of LASER (speed s, then +-2 semitones) is approximated in
the log-mel domain, so that it works on the feature archives BL-JUST trains from:
- speed s shortens the utterance by 1/s and multiplies every frequency by s: the
  frames are linearly resampled in time to round(T / s) frames;
- pitch shift by n semitones multiplies every frequency by r = 2^(n/12) and keeps the
  duration;
- both frequency factors (s * r) are applied at once by reading, for each mel bin
  with centre frequency f, the (linearly interpolated) log-energy at frequency f / (s r)
  on the mel axis; bins whose source lies outside the filterbank's range repeat the
  edge bin.
What this leaves out: the filterbank's triangular windows smear energy across
neighbouring bins (a true shift would re-integrate the spectrum), the fixed 25 ms
window sees the resampled signal differently, and a vocoder's phase artefacts are
absent. It keeps what LASER's loss relies on: x' has other length and spectral
positions than x, with the same phonetic content in the same order.
Both copies go through model.normalize and model.encoder (no SpecAugment); a
Linear(d -> proj_dim) + L2 head (eta) gives Z, Z'; the loss is bljust.losses.laser.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bljust.data.pairs import SPEEDS
from bljust.losses.laser import LaserLoss


def _mel(f: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(f / 700.0)


def _imel(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (torch.exp(m / 1127.0) - 1.0)


def mel_centres(num_bins: int, low_freq: float = 20.0, high_freq: float = 8000.0) -> torch.Tensor:
    """Centre frequencies (Hz) of Kaldi's mel filterbank bins."""
    lo, hi = _mel(torch.tensor(low_freq, dtype=torch.float64)), _mel(torch.tensor(high_freq, dtype=torch.float64))
    step = (hi - lo) / (num_bins + 1)
    return _imel(lo + step * torch.arange(1, num_bins + 1, dtype=torch.float64))


def warp_frequency(x: torch.Tensor, factor: float, low_freq: float = 20.0, high_freq: float = 8000.0) -> torch.Tensor:
    """x (T, D) log-mel -> the log-mel of the signal with every frequency times `factor`."""
    d = x.size(-1)
    centres = mel_centres(d, low_freq, high_freq)
    lo, hi = _mel(centres[0]), _mel(centres[-1])
    pos = (_mel(centres / factor) - lo) / (hi - lo) * (d - 1)  # fractional source bin
    pos = pos.clamp(0, d - 1).to(x.dtype).to(x.device)
    i0 = pos.floor().long().clamp(max=d - 2) if d > 1 else pos.long()
    w = (pos - i0.to(pos.dtype)).clamp(0, 1)
    return x[:, i0] * (1 - w) + x[:, (i0 + 1).clamp(max=d - 1)] * w


def resample_time(x: torch.Tensor, length: int) -> torch.Tensor:
    """x (T, D) -> (length, D) by linear interpolation (frame centres kept aligned)."""
    if length == x.size(0):
        return x
    return F.interpolate(x.t()[None], size=length, mode="linear", align_corners=True)[0].t()


class LaserLowerLoss(nn.Module):
    """`forward(model, feats, feat_lens) -> (loss, stats)` like CPCLoss / BestRQLoss."""

    def __init__(self, dim: int, proj_dim: int = 256, alpha: float = 0.4, sigma: float = 0.0, lam: float = 1.1,
                 gamma: float = 0.1, bandwidth: Optional[float] = None,
                 speeds: Sequence[float] | str = "hubert", semitones: float = 2.0,
                 low_freq: float = 20.0, high_freq: float = 8000.0) -> None:
        super().__init__()
        self.head = nn.Linear(dim, proj_dim)
        self.loss = LaserLoss(alpha=alpha, sigma=sigma, lam=lam, gamma=gamma, bandwidth=bandwidth)
        self.speeds = tuple(float(s) for s in (SPEEDS[speeds] if isinstance(speeds, str) else speeds))
        self.semitones = float(semitones)
        self.low_freq, self.high_freq = low_freq, high_freq

    def perturb(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Perturbed copies (B, T', D) of the valid frames of each utterance, and their lengths.
        Draws from torch's global RNG, so a resumed BL-JUST run repeats them."""
        outs = []
        pick = torch.randint(len(self.speeds), (feats.size(0),)).tolist()
        sign = torch.randint(2, (feats.size(0),)).tolist()
        for b in range(feats.size(0)):
            s = self.speeds[pick[b]]
            r = 2.0 ** ((self.semitones if sign[b] else -self.semitones) / 12.0)
            n = int(feat_lens[b])
            x = feats[b, :n]
            x = resample_time(x, max(1, int(round(n / s))))
            outs.append(warp_frequency(x, s * r, self.low_freq, self.high_freq))
        lens = torch.tensor([o.size(0) for o in outs], device=feats.device)
        return nn.utils.rnn.pad_sequence(outs, batch_first=True), lens

    def embed(self, model: nn.Module, x: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = model.normalize(x)
        valid = torch.arange(x.size(1), device=x.device)[None] < lens[:, None]
        x = x.masked_fill(~valid.unsqueeze(-1), 0.0)
        h, hl = model.encoder(x, lens)
        return F.normalize(self.head(h), dim=-1), hl.clamp(min=1)

    def forward(self, model: nn.Module, feats: torch.Tensor, feat_lens: torch.Tensor
                ) -> Tuple[torch.Tensor, Dict[str, float]]:
        x2, lens2 = self.perturb(feats, feat_lens)
        t = max(feats.size(1), x2.size(1))
        both = torch.cat([F.pad(feats, (0, 0, 0, t - feats.size(1))), F.pad(x2, (0, 0, 0, t - x2.size(1)))])
        z, zl = self.embed(model, both, torch.cat([feat_lens.to(lens2.device), lens2]))
        b = feats.size(0)
        n1, n2 = int(zl[:b].max()), int(zl[b:].max())
        loss = self.loss(z[:b, :n1], zl[:b], z[b:, :n2], zl[b:])
        if not math.isfinite(float(loss.detach())):
            return loss, {"laser": float("nan")}
        return loss, {"laser": float(loss.detach())}
