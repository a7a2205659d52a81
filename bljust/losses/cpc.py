"""CPC / InfoNCE future prediction, the lower-level loss of the BL-JUST paper.

From the encoder output h_t (the context), a prediction head W_k guesses the
encoder representation k steps ahead, k = 1..K. Each prediction is scored by
cosine similarity / temperature against its true target and `num_negatives`
distractors drawn uniformly from the other valid frames of the batch (other time
steps and other utterances); the loss is the cross-entropy of picking the true
one. Anchors, targets and negatives never come from padding.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bljust.losses.masking import valid_mask


class CPCLoss(nn.Module):
    """The unsupervised head (η) and loss; `forward(model, feats, feat_lens)`."""

    def __init__(self, dim: int, num_steps: int = 4, num_negatives: int = 50, temperature: float = 0.1,
                 proj_dim: int = 256, detach_targets: bool = False) -> None:
        super().__init__()
        self.num_steps = num_steps
        self.num_negatives = num_negatives
        self.temperature = temperature
        self.detach_targets = detach_targets
        self.predictor = nn.Linear(dim, proj_dim * num_steps)
        self.target_proj = nn.Linear(dim, proj_dim)
        self.proj_dim = proj_dim

    def loss_from_encoded(self, h: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, float]]:
        b, t, _ = h.shape
        valid = valid_mask(lens, t)
        flat_valid = valid.reshape(-1)
        frames = flat_valid.nonzero(as_tuple=True)[0]          # flat indices of valid frames
        n_valid = frames.numel()
        rank = torch.full((b * t,), -1, dtype=torch.long, device=h.device)
        rank[frames] = torch.arange(n_valid, device=h.device)
        tgt = self.target_proj(h.detach() if self.detach_targets else h).reshape(b * t, -1)
        tgt = F.normalize(tgt.float(), dim=-1)
        pred = self.predictor(h).reshape(b * t, self.num_steps, self.proj_dim)
        pred = F.normalize(pred.float(), dim=-1)
        pos_t = torch.arange(t, device=h.device).unsqueeze(0)
        total = h.new_zeros((), dtype=torch.float32)
        count = 0
        correct = 0
        for k in range(1, self.num_steps + 1):
            anchors = ((pos_t + k) < lens.unsqueeze(1)).reshape(-1).nonzero(as_tuple=True)[0]
            if anchors.numel() == 0 or n_valid < 2:
                continue
            pos = anchors + k
            # negatives: uniform over the other valid frames (shift past the positive's rank)
            r = torch.randint(0, n_valid - 1, (anchors.numel(), self.num_negatives), device=h.device)
            r = r + (r >= rank[pos].unsqueeze(1)).long()
            cand = torch.cat([pos.unsqueeze(1), frames[r]], dim=1)          # (A, 1 + N)
            p = pred[anchors, k - 1]                                         # (A, P)
            logits = torch.einsum("ap,anp->an", p, tgt[cand]) / self.temperature
            total = total + F.cross_entropy(logits, torch.zeros_like(anchors), reduction="sum")
            count += anchors.numel()
            correct += int((logits.detach().argmax(1) == 0).sum())
        if count == 0:  # nothing to predict (every utterance too short): a zero that still has a graph
            return h.sum() * 0.0, {"cpc_acc": 0.0}
        return total / count, {"cpc_acc": correct / count}

    def forward(self, model: nn.Module, feats: torch.Tensor, feat_lens: torch.Tensor
                ) -> Tuple[torch.Tensor, Dict[str, float]]:
        h, lens = model.encode(feats, feat_lens)
        return self.loss_from_encoded(h, lens)
