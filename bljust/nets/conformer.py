"""Conformer encoder: Conv2d subsampling + sinusoidal positions + Conformer blocks.

Two interchangeable block stacks: our own (`impl: bljust`, attention through
torch's scaled_dot_product_attention) and torchaudio.models.Conformer
(`impl: torchaudio`); test/bench/bench_train.py compares their speed.
Padded frames are kept at zero before every convolution, so a frame's output
never depends on how much padding its batch happens to have.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from bljust.nets.subsampling import Conv2dSubsampling


def make_pad_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """True at padded positions: (B, max_len)."""
    return torch.arange(max_len, device=lens.device).unsqueeze(0) >= lens.unsqueeze(1)


class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, dropout: float, max_len: int = 5000) -> None:
        super().__init__()
        self.d_model = d_model
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("pe", self._table(max_len), persistent=False)

    def _table(self, n: int) -> torch.Tensor:
        pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, self.d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / self.d_model))
        pe = torch.zeros(n, self.d_model)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        return pe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(1) > self.pe.size(0):
            self.pe = self._table(x.size(1)).to(self.pe.device)
        return self.dropout(x * math.sqrt(self.d_model) + self.pe[: x.size(1)].to(x.dtype))


class FeedForward(nn.Module):
    def __init__(self, d: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d), nn.Linear(d, ffn), nn.SiLU(), nn.Dropout(dropout), nn.Linear(ffn, d), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} not divisible by num_heads {heads}")
        self.heads = heads
        self.norm = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.attn_dropout = dropout
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        """attend: (B, 1, 1, T) bool, True where a key may be attended."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=self.attn_dropout if self.training else 0.0)
        return self.dropout(self.out(y.transpose(1, 2).reshape(b, t, d)))


class ConvModule(nn.Module):
    def __init__(self, d: int, kernel: int, dropout: float, norm: str = "layer_norm") -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"conv kernel size must be odd, got {kernel}")
        self.norm = nn.LayerNorm(d)
        self.pw1 = nn.Conv1d(d, 2 * d, 1)
        self.dw = nn.Conv1d(d, d, kernel, padding=kernel // 2, groups=d)
        # LayerNorm by default: BatchNorm statistics depend on the batch split, which
        # would make DDP runs differ from single-process ones.
        if norm == "batch_norm":
            self.dw_norm: nn.Module = nn.BatchNorm1d(d)
        elif norm == "layer_norm":
            self.dw_norm = _ChannelLayerNorm(d)
        else:
            raise ValueError(f"conv_norm must be layer_norm or batch_norm, got {norm}")
        self.pw2 = nn.Conv1d(d, d, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        y = F.glu(self.pw1(self.norm(x).transpose(1, 2)), dim=1)  # (B, d, T)
        y = y.masked_fill(pad.unsqueeze(1), 0.0)
        y = F.silu(self.dw_norm(self.dw(y)))
        return self.dropout(self.pw2(y).transpose(1, 2))


class _ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of a (B, C, T) tensor."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x.transpose(1, 2)).transpose(1, 2)


class ConformerBlock(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, kernel: int, dropout: float, conv_norm: str) -> None:
        super().__init__()
        self.ff1 = FeedForward(d, ffn, dropout)
        self.attn = SelfAttention(d, heads, dropout)
        self.conv = ConvModule(d, kernel, dropout, conv_norm)
        self.ff2 = FeedForward(d, ffn, dropout)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, pad: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn(x, attend)
        x = x + self.conv(x, pad)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)


class ConformerEncoder(nn.Module):
    """(B, T, idim) features -> (B, T', d_model) encodings with lengths T'."""

    def __init__(
        self,
        idim: int,
        d_model: int = 256,
        num_heads: int = 4,
        ffn_dim: int = 1024,
        num_layers: int = 12,
        kernel_size: int = 31,
        dropout: float = 0.1,
        subsampling: int = 4,
        conv_norm: str = "layer_norm",
        impl: str = "bljust",
    ) -> None:
        super().__init__()
        self.output_dim = d_model
        self.impl = impl
        self.subsample = Conv2dSubsampling(idim, d_model, subsampling)
        self.pos = PositionalEncoding(d_model, dropout)
        if impl == "bljust":
            self.blocks = nn.ModuleList(
                ConformerBlock(d_model, num_heads, ffn_dim, kernel_size, dropout, conv_norm) for _ in range(num_layers)
            )
        elif impl == "torchaudio":
            from torchaudio.models import Conformer

            self.conformer = Conformer(
                input_dim=d_model, num_heads=num_heads, ffn_dim=ffn_dim, num_layers=num_layers,
                depthwise_conv_kernel_size=kernel_size, dropout=dropout, use_group_norm=conv_norm != "batch_norm",
            )
        else:
            raise ValueError(f"encoder impl must be bljust or torchaudio, got {impl}")

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x, lens = self.subsample(x, lens)
        lens = lens.clamp(min=1, max=x.size(1))
        x = self.pos(x)
        if self.impl == "torchaudio":
            return self.conformer(x, lens)
        pad = make_pad_mask(lens, x.size(1))
        attend = (~pad)[:, None, None, :]
        for blk in self.blocks:
            x = blk(x, pad, attend)
        return x, lens
