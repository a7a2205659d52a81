"""Convolutional front end that shortens the frame sequence before the encoder."""
from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

# (kernel, stride) of the two Conv2d layers for each supported rate; the output
# length follows from the usual "valid" convolution formula, applied per layer.
_LAYERS = {4: ((3, 2), (3, 2)), 6: ((3, 2), (5, 3)), 8: ((3, 2), (3, 2), (3, 2))}


def min_input_frames(rate: int) -> int:
    """Shortest input that still gives one output frame."""
    n = 1
    for k, s in reversed(_LAYERS[rate]):
        n = (n - 1) * s + k
    return n


class Conv2dSubsampling(nn.Module):
    """Conv2d stack over (time, freq) that reduces time by `rate` (4, 6 or 8)."""

    def __init__(self, idim: int, odim: int, rate: int = 4, channels: int | None = None) -> None:
        super().__init__()
        if rate not in _LAYERS:
            raise ValueError(f"subsampling rate must be one of {sorted(_LAYERS)}, got {rate}")
        self.rate = rate
        self.layers = _LAYERS[rate]
        ch = channels or odim
        convs: list[nn.Module] = []
        in_ch, f = 1, idim
        for k, s in self.layers:
            convs += [nn.Conv2d(in_ch, ch, k, s), nn.ReLU()]
            in_ch, f = ch, (f - k) // s + 1
        if f < 1:
            raise ValueError(f"feature dim {idim} too small for subsampling rate {rate}")
        self.conv = nn.Sequential(*convs)
        self.out = nn.Linear(ch * f, odim)

    def output_lengths(self, lens: torch.Tensor) -> torch.Tensor:
        for k, s in self.layers:
            lens = torch.div(lens - k, s, rounding_mode="floor") + 1
        return lens.clamp(min=0)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, D) -> (B, T', odim), lengths T'."""
        y = self.conv(x.unsqueeze(1))  # (B, C, T', F')
        b, c, t, f = y.shape
        y = self.out(y.transpose(1, 2).reshape(b, t, c * f))
        return y, self.output_lengths(lens)
