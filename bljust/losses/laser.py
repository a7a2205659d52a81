"""LASER loss: soft-DTW divergence between an utterance and its perturbed copy,
plus the contrastive inverse-difference-moment (IDM) temporal regulariser.

    L = D_gamma(Z, Z') + alpha * [IDM(Z) + IDM(Z')]

For one sequence z_1..z_n:  D_ij = ||z_i - z_j||,  W_ij = (i - j)^2 + 1,
y_ij = 1 if |i - j| > sigma else 0, and

    IDM = (1/n^2) sum_ij [ y_ij W_ij max(0, lam - D_ij) + (1 - y_ij) D_ij / W_ij ]

i.e. frames far apart in time are pushed at least lam apart in feature space
(harder the farther apart they are) and frames close in time are pulled
together.  D_ij is computed as sqrt(||.||^2 + eps) because the norm has an
infinite gradient at 0; the i == j terms are exactly 0 and are left out.
Padding frames are excluded and each utterance is normalised by its own n^2.
"""

from typing import Optional

import torch

from bljust.losses.softdtw import soft_dtw_divergence

__all__ = ["idm_loss", "LaserLoss"]


def _lengths(lens: Optional[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    b, t = z.shape[:2]
    if lens is None:
        return torch.full((b,), t, dtype=torch.long, device=z.device)
    lens = torch.as_tensor(lens, device=z.device).long()
    if lens.shape != (b,) or bool((lens < 1).any()) or bool((lens > t).any()):
        raise ValueError(f"lengths must be (B,)={b} values in [1, {t}], got {lens.tolist()}")
    return lens


def idm_loss(z: torch.Tensor, z_lens: Optional[torch.Tensor] = None, sigma: float = 0.0,
             lam: float = 1.0, eps: float = 1e-6) -> torch.Tensor:
    """IDM regulariser per utterance, shape (B,), for z (B, T, D) with lengths."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    lens = _lengths(z_lens, z)
    t = z.shape[1]
    idx = torch.arange(t, device=z.device)
    valid = idx.unsqueeze(0) < lens.unsqueeze(1)  # (B, T)
    z = torch.where(valid.unsqueeze(2), z, z.new_zeros(()))
    sq = (z * z).sum(-1)
    d2 = torch.baddbmm(sq.unsqueeze(2), z, z.transpose(1, 2), alpha=-2.0)
    dist = (d2 + sq.unsqueeze(1)).clamp(min=0.0).add(eps).sqrt()
    gap = (idx.unsqueeze(1) - idx.unsqueeze(0)).to(z.dtype)  # i - j
    w = gap * gap + 1.0
    far = gap.abs() > sigma
    term = torch.where(far, w * torch.relu(lam - dist), dist / w)
    pair_ok = valid.unsqueeze(2) & valid.unsqueeze(1) & (gap != 0)
    term = torch.where(pair_ok, term, term.new_zeros(()))
    n = lens.to(z.dtype)
    return term.sum((1, 2)) / (n * n)


class LaserLoss(torch.nn.Module):
    """LASER loss, mean over the batch.

    Args: alpha (IDM weight), sigma (|i - j| beyond which frames are pushed
    apart), lam (the margin lambda), gamma (soft-DTW smoothing), bandwidth
    (optional Sakoe-Chiba band of the soft-DTW, see bljust.losses.softdtw),
    eps (inside the square root of D_ij).  Paper settings: HuBERT alpha=0.4,
    lam=1.1; WavLM alpha=0.15, lam=1.0; both sigma=0, gamma=0.1.
    """

    def __init__(self, alpha: float = 0.4, sigma: float = 0.0, lam: float = 1.1,
                 gamma: float = 0.1, bandwidth: Optional[float] = None,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.alpha, self.sigma, self.lam = alpha, sigma, lam
        self.gamma, self.bandwidth, self.eps = gamma, bandwidth, eps

    def terms(self, z: torch.Tensor, z_lens: Optional[torch.Tensor],
              z2: torch.Tensor, z2_lens: Optional[torch.Tensor]):
        """(soft-DTW divergence, IDM(Z) + IDM(Z')), each per pair (B,)."""
        div = soft_dtw_divergence(z, z2, z_lens, z2_lens, gamma=self.gamma,
                                  bandwidth=self.bandwidth)
        reg = (idm_loss(z, z_lens, self.sigma, self.lam, self.eps)
               + idm_loss(z2, z2_lens, self.sigma, self.lam, self.eps))
        return div, reg

    def forward(self, z: torch.Tensor, z_lens: Optional[torch.Tensor],
                z2: torch.Tensor, z2_lens: Optional[torch.Tensor]) -> torch.Tensor:
        div, reg = self.terms(z, z_lens, z2, z2_lens)
        return (div + self.alpha * reg).mean()

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, sigma={self.sigma}, lam={self.lam}, "
                f"gamma={self.gamma}, bandwidth={self.bandwidth}")
