"""SpecAugment on log-mel features: time warp, frequency masks, time masks.

Active only in training mode; masks use the torch global RNG so that a resumed
run draws the same masks as an uninterrupted one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpecAugment(nn.Module):
    def __init__(
        self,
        num_freq_masks: int = 2,
        freq_mask_width: int = 27,
        num_time_masks: int = 2,
        time_mask_width: int = 40,
        time_mask_ratio: float = 0.05,
        time_warp: int = 0,
    ) -> None:
        """time_mask_width caps a time mask; time_mask_ratio caps it further at ratio*length."""
        super().__init__()
        self.num_freq_masks = num_freq_masks
        self.freq_mask_width = freq_mask_width
        self.num_time_masks = num_time_masks
        self.time_mask_width = time_mask_width
        self.time_mask_ratio = time_mask_ratio
        self.time_warp = time_warp

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) features, padded; returns the augmented copy (train mode only)."""
        if not self.training:
            return x
        if self.time_warp > 0:
            x = self._warp(x, lens)
        b, t, d = x.shape
        dev = x.device
        keep = torch.ones(b, t, d, dtype=torch.bool, device=dev)
        if self.num_freq_masks > 0 and self.freq_mask_width > 0:
            w = torch.randint(0, min(self.freq_mask_width, d // 2) + 1, (b, self.num_freq_masks), device=dev)
            start = (torch.rand(b, self.num_freq_masks, device=dev) * (d - w).clamp(min=1)).long()
            f = torch.arange(d, device=dev).view(1, 1, d)
            m = (f >= start.unsqueeze(-1)) & (f < (start + w).unsqueeze(-1))  # (B, n, D)
            keep &= ~m.any(1).unsqueeze(1)
        if self.num_time_masks > 0 and self.time_mask_width > 0:
            cap = torch.minimum(
                torch.full_like(lens, self.time_mask_width),
                (lens.float() * self.time_mask_ratio).long() if self.time_mask_ratio > 0 else torch.full_like(lens, self.time_mask_width),
            ).to(dev)
            w = (torch.rand(b, self.num_time_masks, device=dev) * (cap.unsqueeze(1) + 1).float()).long()
            start = (torch.rand(b, self.num_time_masks, device=dev) * (lens.to(dev).unsqueeze(1) - w).clamp(min=1).float()).long()
            tt = torch.arange(t, device=dev).view(1, 1, t)
            m = (tt >= start.unsqueeze(-1)) & (tt < (start + w).unsqueeze(-1))  # (B, n, T)
            keep &= ~m.any(1).unsqueeze(-1)
        return x * keep

    def _warp(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Moves a random centre frame by up to ±time_warp frames, stretching both sides."""
        out = x.clone()
        for i in range(x.size(0)):
            n = int(lens[i])
            w = self.time_warp
            if n <= 2 * w + 2:
                continue
            c = int(torch.randint(w + 1, n - w - 1, (1,)))
            nc = c + int(torch.randint(-w, w + 1, (1,)))
            seg = x[i, :n].t().unsqueeze(0)  # (1, D, n)
            left = F.interpolate(seg[..., :c], size=nc, mode="linear", align_corners=False)
            right = F.interpolate(seg[..., c:], size=n - nc, mode="linear", align_corners=False)
            out[i, :n] = torch.cat([left, right], -1)[0].t()
        return out
