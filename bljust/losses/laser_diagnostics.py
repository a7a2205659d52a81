"""Diagnostics of LASER fine-tuning: is the representation collapsing, and how do the
soft alignments look?

Soft-DTW between an utterance and its perturbed copy is minimised trivially by a
representation that is the same at every frame (then every alignment costs nothing);
the IDM term is there to prevent that. These statistics show, per step, whether it does:

- ``cos_near``: mean cosine similarity of neighbouring frames (high is expected: speech is
  smooth at 20 ms);
- ``cos_far``: mean cosine of frames at least `far` frames apart (near 1: collapse);
- ``var``: mean per-dimension variance over the frames of the batch (near 0: collapse);
- ``erank``: effective rank of the centred frame matrix, exp of the entropy of its
  normalised singular values (Roy & Vetterli, 2007); 1 means all frames on one line;
- ``diag_dev_id`` / ``diag_dev_pair``: mean distance |i/n - j/m| of the soft alignment's mass
  from the diagonal, for the utterance against itself and against its perturbed copy
  (the identity pair should stay on the diagonal; a pair of a speed-perturbed copy bends
  off it but stays a path).

``collapsed(stats)`` flags a representation as collapsed; a test plants one.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

from bljust.losses.masking import valid_mask
from bljust.losses.softdtw import expected_alignment

__all__ = ["representation_stats", "alignment_deviation", "laser_diagnostics", "collapsed"]


@torch.no_grad()
def representation_stats(z: torch.Tensor, lens: Optional[torch.Tensor] = None, far: int = 20) -> Dict[str, float]:
    """cos_near, cos_far, var and erank of a (B, T, D) batch of frame representations."""
    b, t, d = z.shape
    lens = torch.full((b,), t, device=z.device) if lens is None else lens.to(z.device)
    z = z.detach().double()
    valid = valid_mask(lens, t)
    zn = F.normalize(z, dim=-1)
    near = (zn[:, 1:] * zn[:, :-1]).sum(-1)
    near_ok = valid[:, 1:] & valid[:, :-1]
    cos = torch.bmm(zn, zn.transpose(1, 2))
    gap = (torch.arange(t, device=z.device).view(1, t) - torch.arange(t, device=z.device).view(t, 1)).abs()
    far_ok = (gap >= far).unsqueeze(0) & valid.unsqueeze(2) & valid.unsqueeze(1)
    frames = z[valid]                                        # (F, D)
    centred = frames - frames.mean(0, keepdim=True)
    sv = torch.linalg.svdvals(centred)
    p = sv / sv.sum().clamp_min(1e-30)
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum()
    return {
        "cos_near": float(near[near_ok].mean()) if near_ok.any() else float("nan"),
        "cos_far": float(cos[far_ok].mean()) if far_ok.any() else float("nan"),
        "var": float(frames.var(0, unbiased=False).mean()),
        "erank": float(torch.exp(entropy)) if float(sv.sum()) > 0 else 1.0,
    }


@torch.no_grad()
def alignment_deviation(x: torch.Tensor, y: torch.Tensor, x_lens: Optional[torch.Tensor] = None,
                        y_lens: Optional[torch.Tensor] = None, gamma: float = 0.1) -> float:
    """Mean over the batch of sum E_ij |i/n - j/m| / sum E_ij for the soft alignment E."""
    b, n, m = x.shape[0], x.shape[1], y.shape[1]
    xl = torch.full((b,), n) if x_lens is None else x_lens.cpu()
    yl = torch.full((b,), m) if y_lens is None else y_lens.cpu()
    e = expected_alignment(x.detach().double().cpu(), y.detach().double().cpu(), xl, yl, gamma=gamma)
    i = (torch.arange(n, dtype=torch.float64).view(1, n, 1) + 0.5) / xl.view(b, 1, 1)
    j = (torch.arange(m, dtype=torch.float64).view(1, 1, m) + 0.5) / yl.view(b, 1, 1)
    dev = (e * (i - j).abs()).sum((1, 2)) / e.sum((1, 2)).clamp_min(1e-30)
    return float(dev.mean())


def laser_diagnostics(z: torch.Tensor, z_lens: torch.Tensor, z2: torch.Tensor, z2_lens: torch.Tensor,
                      gamma: float = 0.1, far: int = 20) -> Dict[str, float]:
    """Every statistic of this module for a LASER batch (Z, Z')."""
    out = representation_stats(z, z_lens, far)
    out["diag_dev_id"] = alignment_deviation(z, z, z_lens, z_lens, gamma)
    out["diag_dev_pair"] = alignment_deviation(z, z2, z_lens, z2_lens, gamma)
    return out


def collapsed(stats: Dict[str, float], max_cos_far: float = 0.95, min_erank: float = 1.5,
              min_var: float = 1e-6) -> bool:
    """True when frames far apart are (nearly) the same or all frames lie on one line."""
    return stats["cos_far"] > max_cos_far or stats["erank"] < min_erank or stats["var"] < min_var
