"""BEST-RQ: masked prediction of random-projection-quantised fbank frames.

The (CMVN-normalised) input frames are stacked by the encoder's subsampling rate,
projected by a frozen random matrix, L2-normalised and mapped to the nearest entry
of a frozen random codebook: those indices are the targets. Spans of input frames
are replaced by Gaussian noise, the encoder runs on the masked input, and a
classifier head (η) predicts the targets of the masked encoder frames. Masks and
targets never cover padding.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bljust.losses.masking import span_mask, valid_mask


class BestRQLoss(nn.Module):
    def __init__(self, dim: int, input_dim: int, stack: int = 4, codebook_size: int = 8192,
                 codebook_dim: int = 16, mask_prob: float = 0.01, mask_span: int = 40,
                 noise_std: float = 0.1, seed: int = 1234) -> None:
        super().__init__()
        self.stack = stack
        self.mask_prob = mask_prob
        self.mask_span = mask_span
        self.noise_std = noise_std
        g = torch.Generator().manual_seed(seed)
        # frozen buffers: saved with the model so targets never change across resumes
        self.register_buffer("projection", torch.empty(input_dim * stack, codebook_dim).normal_(generator=g)
                             * (2.0 / (input_dim * stack)) ** 0.5)
        self.register_buffer("codebook", F.normalize(torch.randn(codebook_size, codebook_dim, generator=g), dim=-1))
        self.classifier = nn.Linear(dim, codebook_size)

    @torch.no_grad()
    def targets(self, x: torch.Tensor, n_out: int) -> torch.Tensor:
        """x (B, T, D) normalised fbank -> (B, n_out) codebook indices, one per encoder frame."""
        b, t, d = x.shape
        need = n_out * self.stack
        if t < need:
            x = F.pad(x, (0, 0, 0, need - t))
        stacked = x[:, :need].reshape(b, n_out, self.stack * d)
        z = F.normalize(stacked.float() @ self.projection, dim=-1)
        return (z @ self.codebook.t()).argmax(-1)

    def forward(self, model: nn.Module, feats: torch.Tensor, feat_lens: torch.Tensor
                ) -> Tuple[torch.Tensor, Dict[str, float]]:
        x = model.normalize(feats)
        x = x.masked_fill(~valid_mask(feat_lens, x.size(1)).unsqueeze(-1), 0.0)
        mask = span_mask(feat_lens, x.size(1), self.mask_prob, self.mask_span)
        noise = torch.randn_like(x) * self.noise_std
        x_masked = torch.where(mask.unsqueeze(-1), noise, x)
        h, lens = model.encoder(x_masked, feat_lens)
        n_out = h.size(1)
        tgt = self.targets(x, n_out)
        # an encoder frame is masked when any input frame of its stack is masked
        need = n_out * self.stack
        m = F.pad(mask, (0, max(0, need - mask.size(1))))[:, :need].reshape(-1, n_out, self.stack).any(-1)
        sel = m & valid_mask(lens, n_out)
        if not bool(sel.any()):
            return h.sum() * 0.0, {"bestrq_acc": 0.0}
        logits = self.classifier(h[sel]).float()
        loss = F.cross_entropy(logits, tgt[sel])
        acc = float((logits.detach().argmax(-1) == tgt[sel]).float().mean())
        return loss, {"bestrq_acc": acc}
