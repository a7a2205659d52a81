"""Global mean/variance normalisation stored inside the model as buffers.

Keeping the statistics in the model's state_dict means a decoder needs only the
model file, never the training set's cmvn.ark.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


class GlobalCMVN(nn.Module):
    def __init__(self, dim: int, mean: np.ndarray | None = None, istd: np.ndarray | None = None) -> None:
        super().__init__()
        m = torch.zeros(dim) if mean is None else torch.as_tensor(np.asarray(mean), dtype=torch.float32)
        s = torch.ones(dim) if istd is None else torch.as_tensor(np.asarray(istd), dtype=torch.float32)
        if m.shape != (dim,) or s.shape != (dim,):
            raise ValueError(f"CMVN stats have dims {tuple(m.shape)}/{tuple(s.shape)}, features have {dim}")
        self.register_buffer("mean", m)
        self.register_buffer("istd", s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.istd
