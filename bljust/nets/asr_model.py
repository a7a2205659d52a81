"""Conformer-CTC acoustic model: CMVN -> SpecAugment -> encoder -> CTC head.

`encoder` and `ctc_head` are separate attributes so that other training schemes
(BL-JUST) can put their own heads on `encode`'s output.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bljust.nets.cmvn import GlobalCMVN
from bljust.nets.conformer import ConformerEncoder, make_pad_mask
from bljust.nets.specaug import SpecAugment


class ASRModel(nn.Module):
    def __init__(
        self,
        input_dim: int,
        vocab_size: int,
        encoder: Dict[str, Any] | None = None,
        specaug: Dict[str, Any] | None = None,
        ctc: Dict[str, Any] | None = None,
        cmvn_mean: np.ndarray | None = None,
        cmvn_istd: np.ndarray | None = None,
        blank_id: int = 0,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.vocab_size = vocab_size
        self.blank_id = blank_id
        self.normalize = GlobalCMVN(input_dim, cmvn_mean, cmvn_istd)
        self.specaug = SpecAugment(**specaug) if specaug else None
        self.encoder = ConformerEncoder(input_dim, **(encoder or {}))
        self.ctc_head = nn.Linear(self.encoder.output_dim, vocab_size)
        ctc = dict(ctc or {})
        self.zero_infinity = bool(ctc.pop("zero_infinity", True))
        if ctc:
            raise ValueError(f"unknown ctc options: {sorted(ctc)}")

    def encode(self, feats: torch.Tensor, feat_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, D) raw fbank -> (enc (B, T', H), enc_lens (B,)); SpecAugment in train mode."""
        x = self.normalize(feats)
        x = x.masked_fill(make_pad_mask(feat_lens, x.size(1)).unsqueeze(-1), 0.0)
        if self.specaug is not None:
            x = self.specaug(x, feat_lens)
        return self.encoder(x, feat_lens)

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.ctc_head(enc).float(), dim=-1)

    def ctc_loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, ys: torch.Tensor, y_lens: torch.Tensor) -> torch.Tensor:
        """Sum over the batch of per-utterance CTC losses."""
        lp = self.ctc_log_probs(enc).transpose(0, 1)  # (T', B, V)
        return F.ctc_loss(
            lp, ys, enc_lens, y_lens, blank=self.blank_id, reduction="sum", zero_infinity=self.zero_infinity
        )

    def forward(
        self, feats: torch.Tensor, feat_lens: torch.Tensor, ys: torch.Tensor, y_lens: torch.Tensor
    ) -> Tuple[torch.Tensor, Dict[str, float]]:
        """Returns the CTC loss averaged over utterances, and stats for logging."""
        enc, enc_lens = self.encode(feats, feat_lens)
        loss = self.ctc_loss(enc, enc_lens, ys, y_lens) / feats.size(0)
        return loss, {"loss": float(loss.detach()), "batch_size": float(feats.size(0))}


def build_asr_model(config: Dict[str, Any], input_dim: int, vocab_size: int,
                    cmvn_mean: np.ndarray | None = None, cmvn_istd: np.ndarray | None = None) -> ASRModel:
    """Builds the model from the `encoder`, `specaug` and `ctc` sections of a training config."""
    return ASRModel(
        input_dim, vocab_size, encoder=config.get("encoder"), specaug=config.get("specaug"),
        ctc=config.get("ctc"), cmvn_mean=cmvn_mean, cmvn_istd=cmvn_istd,
    )
