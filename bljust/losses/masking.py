"""Helpers shared by the unsupervised losses: padding masks and valid-frame indexing."""
from __future__ import annotations

import torch


def valid_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, T) bool, True on frames inside each utterance."""
    return torch.arange(max_len, device=lens.device).unsqueeze(0) < lens.unsqueeze(1)


def span_mask(lens: torch.Tensor, max_len: int, prob: float, span: int,
              generator: torch.Generator | None = None, min_spans: int = 1) -> torch.Tensor:
    """(B, T) bool mask of spans inside each utterance (never on padding).

    Each valid frame starts a span of `span` frames with probability `prob`
    (wav2vec 2.0 / BEST-RQ style); utterances that drew fewer than `min_spans`
    starts get one at a random position, so every utterance contributes.
    """
    b = lens.numel()
    dev = lens.device
    starts = torch.rand(b, max_len, generator=generator, device="cpu").to(dev) < prob
    last_start = (lens - span).clamp(min=0)
    valid_start = torch.arange(max_len, device=dev).unsqueeze(0) <= last_start.unsqueeze(1)
    starts &= valid_start
    if min_spans > 0:
        need = starts.sum(1) < min_spans
        if need.any():
            pick = (torch.rand(b, generator=generator, device="cpu").to(dev) * (last_start + 1).float()).long()
            starts[need, pick[need]] = True
    # dilate the starts into spans with a cumulative-sum trick (no Python loop over frames)
    c = torch.cumsum(starts.int(), dim=1)
    shifted = torch.nn.functional.pad(c, (span, 0))[:, :max_len]
    mask = (c - shifted) > 0
    return mask & valid_mask(lens, max_len)
