"""CPC / InfoNCE future prediction, the lower-level loss of the BL-JUST paper.

A prediction head W_k guesses, from a context vector c, the encoder representation
k steps ahead, k = 1..K. Each prediction is scored by cosine similarity / temperature
against its true target and `num_negatives` distractors drawn uniformly from the
other valid target frames of the batch; the loss is the cross-entropy of picking the
true one. Anchors, targets and negatives never come from padding.

Where the context comes from (`context`):

- ``segment`` (the default, as the paper's authors do it): each unlabeled utterance is
  cut into windows of `context_frames` + `future_frames` input frames (2 s + 1 s at
  10 ms); the context part and the future part go through the encoder *separately*.
  c is the encoder output at the last frame of the context part, which has seen
  nothing after the cut; the targets are the encoder outputs of the future part,
  which has seen nothing before it. So no prediction can copy what it predicts.
  The distractors of the prediction k steps ahead are the k-th future frames of the
  other windows of the batch, so a frame's place in its segment gives nothing away.
  An utterance shorter than one window gives one window cut at the same ratio.
- ``bidirectional`` (kept for comparison, with look-ahead): c_t is the encoder output
  at every frame t of the whole utterance. A bidirectional encoder has already seen
  frames t+1..t+K there, so the task can be solved by copying (accuracy near 100%
  within a hundred steps on mini_synth): it is not CPC as the paper means it.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bljust.losses.masking import valid_mask


class CPCLoss(nn.Module):
    """The unsupervised head (η) and loss; `forward(model, feats, feat_lens)`."""

    def __init__(self, dim: int, num_steps: int = 4, num_negatives: int = 50, temperature: float = 0.1,
                 proj_dim: int = 256, detach_targets: bool = False, context: str = "segment",
                 context_frames: int = 200, future_frames: int = 100) -> None:
        super().__init__()
        if context not in ("segment", "bidirectional"):
            raise ValueError(f"unsup.context must be segment or bidirectional, not {context!r}")
        if context_frames < 8 or future_frames < 8:
            raise ValueError("unsup.context_frames and unsup.future_frames must be >= 8 input frames")
        self.context = context
        self.context_frames, self.future_frames = int(context_frames), int(future_frames)
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

    # ------------------------------------------------------------------ segment context
    def windows(self, feat_lens: torch.Tensor) -> List[Tuple[int, int, int, int]]:
        """(utterance, start, cut, end) of each window, in input frames: context [start, cut),
        future [cut, end)."""
        c, f = self.context_frames, self.future_frames
        out = []
        for b, n in enumerate(feat_lens.tolist()):
            if n >= c + f:
                out += [(b, s, s + c, s + c + f) for s in range(0, n - c - f + 1, c + f)]
            else:
                cut = (n * c) // (c + f)
                if cut >= 8 and n - cut >= 8:
                    out.append((b, 0, cut, n))
        return out

    def _gather(self, feats: torch.Tensor, spans: List[Tuple[int, int, int]]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(len(spans), longest, D) batch of feats[b, s:e] for each (b, s, e), zero-padded."""
        lens = torch.tensor([e - s for _, s, e in spans], device=feats.device)
        t = int(lens.max())
        idx = torch.tensor([s for _, s, _ in spans], device=feats.device).unsqueeze(1) + torch.arange(
            t, device=feats.device).unsqueeze(0)
        utt = torch.tensor([b for b, _, _ in spans], device=feats.device).unsqueeze(1).expand(-1, t)
        keep = valid_mask(lens, t)
        x = feats[utt, idx.clamp(max=feats.size(1) - 1)]
        return x.masked_fill(~keep.unsqueeze(-1), 0.0), lens

    def predictions(self, model: nn.Module, feats: torch.Tensor, feat_lens: torch.Tensor):
        """Segment mode: predictions (W, K, P) made at each window's last context frame, the
        future encodings (W, T', H) with their lengths, and the windows."""
        wins = self.windows(feat_lens)
        if not wins:
            return None, None, None, wins
        ctx, ctx_lens = self._gather(feats, [(b, s, c) for b, s, c, _ in wins])
        fut, fut_lens = self._gather(feats, [(b, c, e) for b, _, c, e in wins])
        hc, lc = model.encode(ctx, ctx_lens)
        hf, lf = model.encode(fut, fut_lens)
        last = hc[torch.arange(len(wins), device=hc.device), (lc - 1).clamp(min=0)]
        pred = self.predictor(last).reshape(len(wins), self.num_steps, self.proj_dim)
        return pred, hf, lf, wins

    def candidates(self, lf: torch.Tensor, t: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Segment mode: for each prediction (window w, step k) whose target exists, the flat index
        w * t + k of its target and of `num_negatives` distractors, all at the same offset k of
        *other* windows' future parts: (window, step, candidates (A, 1 + N), positive first).

        Every candidate sits at the same distance from the start of its separately encoded
        segment, so where a frame sits (the segment's edge looks different to a convolution or
        an attention layer) tells nothing about which one is the target: only the context does.
        Drawing distractors from every frame of the batch instead let a context-free guess of
        "the frame k from a segment start" pick the target about a third of the time on mini_synth
        (RESULTS.md of egs/mini_synth/asr1). A step at which fewer than two windows have a
        target makes no prediction."""
        k = torch.arange(self.num_steps, device=lf.device)
        live = k.unsqueeze(0) < lf.unsqueeze(1)                             # (W, K): target exists
        n_live = live.sum(0)                                                # windows with a target at k
        live = live & (n_live >= 2).unsqueeze(0)
        win_idx, step = live.nonzero(as_tuple=True)
        if win_idx.numel() == 0:
            empty = win_idx.new_zeros((0, 1 + self.num_negatives))
            return win_idx, step, empty
        # the live windows of each step, grouped by step: by_step[start[k] + i] is the i-th one
        _, by_step = live.t().nonzero(as_tuple=True)
        start = torch.cumsum(n_live, 0) - n_live
        own = (live.cumsum(0) - 1)[win_idx, step]                           # rank of w among step k's windows
        n = n_live[step].unsqueeze(1)
        r = (torch.rand(win_idx.numel(), self.num_negatives, device=lf.device) * (n - 1)).long()
        r = r + (r >= own.unsqueeze(1)).long()                              # skip the window itself
        neg = by_step[start[step].unsqueeze(1) + r]
        cand = torch.cat([win_idx.unsqueeze(1), neg], dim=1) * t + step.unsqueeze(1)
        return win_idx, step, cand

    def _segment_loss(self, model: nn.Module, feats: torch.Tensor, feat_lens: torch.Tensor
                      ) -> Tuple[torch.Tensor, Dict[str, float]]:
        pred, hf, lf, wins = self.predictions(model, feats, feat_lens)
        if pred is None:
            return feats.sum() * 0.0 + sum(p.sum() for p in self.parameters()) * 0.0, {"cpc_acc": 0.0}
        w, t, _ = hf.shape
        tgt = F.normalize(self.target_proj(hf.detach() if self.detach_targets else hf).float(), dim=-1)
        tgt = tgt.reshape(w * t, -1)
        pred = F.normalize(pred.float(), dim=-1)
        win_idx, step, cand = self.candidates(lf, t)
        if win_idx.numel() == 0:
            return hf.sum() * 0.0 + pred.sum() * 0.0 + tgt.sum() * 0.0, {"cpc_acc": 0.0}
        logits = torch.einsum("ap,anp->an", pred[win_idx, step], tgt[cand]) / self.temperature
        loss = F.cross_entropy(logits, torch.zeros_like(win_idx))
        acc = (logits.detach().argmax(1) == 0).float().mean()
        return loss, {"cpc_acc": float(acc)}

    def forward(self, model: nn.Module, feats: torch.Tensor, feat_lens: torch.Tensor
                ) -> Tuple[torch.Tensor, Dict[str, float]]:
        if self.context == "segment":
            return self._segment_loss(model, feats, feat_lens)
        h, lens = model.encode(feats, feat_lens)
        return self.loss_from_encoded(h, lens)
