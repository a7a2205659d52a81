"""SUPERB-style evaluation of an upstream: frozen upstream, learned softmax-weighted
sum of all its hidden states, a small downstream, CTC.

ASR: Linear(D->1024) -> 2-layer BiLSTM (1024 per direction) -> Linear -> CTC over characters.
PR:  Linear(D->256) -> Linear -> CTC over phonemes.
`log_probs` gives (B, T, V) log-probabilities and lengths, the input of
bljust.decode.ctc's greedy and prefix beam search.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from bljust.nets.upstream import Upstream

TASKS = ("asr", "pr")


class WeightedSum(nn.Module):
    """sum_l softmax(w)_l * h_l, with w = 0 at the start (every layer weighs the same)."""

    def __init__(self, num_states: int, layer_norm: bool = False) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_states))
        self.layer_norm = layer_norm

    def forward(self, states: List[torch.Tensor]) -> torch.Tensor:
        if len(states) != self.weights.numel():
            raise ValueError(f"expected {self.weights.numel()} hidden states, got {len(states)}")
        x = torch.stack(states, dim=0)  # (L, B, T, D)
        if self.layer_norm:
            x = F.layer_norm(x, x.shape[-1:])
        w = self.normalized().to(x.dtype)
        return (w[:, None, None, None] * x).sum(dim=0)

    def normalized(self) -> torch.Tensor:
        return torch.softmax(self.weights, dim=0)


class BiLSTMHead(nn.Module):
    def __init__(self, in_dim: int, vocab_size: int, proj_dim: int = 1024, hidden: int = 1024,
                 layers: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, proj_dim)
        self.lstm = nn.LSTM(proj_dim, hidden, num_layers=layers, bidirectional=True, batch_first=True,
                            dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden, vocab_size)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        packed = pack_padded_sequence(x, lens.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        y, _ = self.lstm(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=x.size(1))
        return self.out(self.dropout(y))


class LinearHead(nn.Module):
    def __init__(self, in_dim: int, vocab_size: int, proj_dim: int = 256) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, proj_dim)
        self.out = nn.Linear(proj_dim, vocab_size)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        return self.out(self.proj(x))


class SuperbModel(nn.Module):
    def __init__(self, upstream: Upstream, task: str, vocab_size: int, blank_id: int = 0,
                 proj_dim: Optional[int] = None, lstm_dim: int = 1024, lstm_layers: int = 2,
                 dropout: float = 0.2, layer_norm: bool = False) -> None:
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.task = task
        self.blank_id = blank_id
        self.vocab_size = vocab_size
        self.upstream = upstream
        upstream.requires_grad_(False)
        upstream.eval()
        self.featurizer = WeightedSum(upstream.num_layers + 1, layer_norm=layer_norm)
        if task == "asr":
            self.head: nn.Module = BiLSTMHead(upstream.hidden_dim, vocab_size, proj_dim or 1024, lstm_dim,
                                              lstm_layers, dropout)
        else:
            self.head = LinearHead(upstream.hidden_dim, vocab_size, proj_dim or 256)

    def train(self, mode: bool = True) -> "SuperbModel":
        super().train(mode)
        self.upstream.eval()  # frozen: no dropout in the upstream, ever
        return self

    def log_probs(self, wavs: torch.Tensor, wav_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """wavs (B, S) -> (log-probabilities (B, T, V), frame lengths (B,))."""
        with torch.no_grad():
            states, lens = self.upstream(wavs, wav_lens)
        x = self.featurizer([s.detach() for s in states])
        return F.log_softmax(self.head(x, lens).float(), dim=-1), lens

    def forward(self, wavs: torch.Tensor, wav_lens: torch.Tensor, ys: torch.Tensor, y_lens: torch.Tensor
                ) -> Tuple[torch.Tensor, Dict[str, float]]:
        """CTC loss averaged over utterances, and stats for logging."""
        logp, lens = self.log_probs(wavs, wav_lens)
        loss = F.ctc_loss(logp.transpose(0, 1), ys, lens, y_lens, blank=self.blank_id,
                          reduction="sum", zero_infinity=True) / wavs.size(0)
        return loss, {"loss": float(loss.detach()), "batch_size": float(wavs.size(0))}

    def downstream_state_dict(self) -> Dict[str, torch.Tensor]:
        """What training changes (weights and head); the upstream is saved once, elsewhere."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("upstream.")}

    def load_downstream_state_dict(self, sd: Dict[str, torch.Tensor]) -> None:
        res = self.load_state_dict(sd, strict=False)
        missing = [k for k in res.missing_keys if not k.startswith("upstream.")]
        if missing or res.unexpected_keys:
            raise RuntimeError(f"downstream state: missing {missing}, unexpected {res.unexpected_keys}")
