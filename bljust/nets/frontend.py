"""Kaldi-compatible fbank of a padded batch of waveforms, on whatever device the batch is on.

With `frontend: {type: fbank, on_device: true}` and raw input, the data loader hands the
trainer waveforms and this module turns them into the same fbank that
bljust/features/fbank.py computes on CPU (same window, mel matrix, frame count and
epsilon floor; the numbers agree to float32 rounding), right after the batch reaches
the GPU. It runs in float32 whatever autocast says: a log-mel in bf16 would lose the
precision the model was trained on.
"""
from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import nn

from bljust.features.fbank import _EPS, FbankOptions, _window, mel_matrix


class FbankFrontend(nn.Module):
    """(B, S) or (B, S, 1) int16-scale waveforms + sample counts -> (B, T, D) fbank + frame counts."""

    def __init__(self, opts: FbankOptions) -> None:
        super().__init__()
        if opts.dither != 0.0:
            raise ValueError("fbank dither is drawn per utterance on CPU and cannot be reproduced on the device: "
                             "set dither: 0 or compute the fbank in the data loader (frontend.on_device: false)")
        self.opts = opts
        # Not in the state_dict: they follow from the options, and a model file stays the same either way.
        self.register_buffer("window", torch.from_numpy(_window(opts)), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_matrix(opts)), persistent=False)

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        size, shift = self.opts.window_size, self.opts.window_shift
        if self.opts.snip_edges:
            return torch.where(num_samples < size, torch.zeros_like(num_samples),
                               1 + torch.div(num_samples - size, shift, rounding_mode="floor"))
        return torch.div(num_samples + shift // 2, shift, rounding_mode="floor")

    def _padded(self, wave: torch.Tensor, n: int) -> torch.Tensor:
        """One utterance's samples as Kaldi frames them (reflected at both ends without snip_edges)."""
        o = self.opts
        x = wave[:n]
        if o.snip_edges:
            return x
        pad = o.window_size // 2 - o.window_shift // 2
        rev = x.flip(0)
        head = rev[len(rev) - pad:] if pad > 0 else x[:0]
        return torch.cat([head, x[-pad:] if pad < 0 else x, rev])

    def forward(self, waves: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(waves.device.type, enabled=False):
            return self._forward(waves.float(), lens)

    def _forward(self, waves: torch.Tensor, lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        o = self.opts
        if waves.dim() == 3:
            waves = waves.squeeze(-1)
        flens = self.num_frames(lens)
        t = int(flens.max()) if flens.numel() else 0
        size, shift = o.window_size, o.window_shift
        need = (t - 1) * shift + size if t > 0 else size
        if o.snip_edges:
            x = waves[:, :need] if waves.size(1) >= need else nn.functional.pad(waves, (0, need - waves.size(1)))
        else:
            x = waves.new_zeros(waves.size(0), need)
            for b in range(waves.size(0)):
                p = self._padded(waves[b], int(lens[b]))[:need]
                x[b, :p.numel()] = p
        frames = x.unfold(1, size, shift)[:, :t]  # (B, T, size), a view
        energy = None
        if o.remove_dc_offset:
            frames = frames - frames.mean(dim=-1, keepdim=True)
        else:
            frames = frames.clone()
        if o.use_energy and o.raw_energy:
            energy = frames.pow(2).sum(-1)
        if o.preemphasis != 0.0:
            first = frames[..., :1] * (1.0 - o.preemphasis)
            frames = torch.cat([first, frames[..., 1:] - o.preemphasis * frames[..., :-1]], dim=-1)
        frames = frames * self.window
        if o.use_energy and not o.raw_energy:
            energy = frames.pow(2).sum(-1)
        spec = torch.fft.rfft(frames, n=o.padded_window_size, dim=-1)
        power = spec.real.pow(2) + spec.imag.pow(2)
        if not o.use_power:
            power = power.sqrt()
        feats = power @ self.mel
        if o.use_log_fbank:
            feats = feats.clamp(min=_EPS).log()
        if energy is not None:
            energy = energy.clamp(min=_EPS).log()
            if o.energy_floor > 0:
                energy = energy.clamp(min=math.log(o.energy_floor))
            e = energy.unsqueeze(-1)
            feats = torch.cat([feats, e] if o.htk_compat else [e, feats], dim=-1)
        valid = torch.arange(t, device=feats.device)[None, :] < flens[:, None]
        return feats.masked_fill(~valid.unsqueeze(-1), 0.0), flens
