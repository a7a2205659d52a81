"""Kaldi-compatible log-mel filterbank features, vectorised over frames and utterances.

The numbers follow Kaldi's compute-fbank-feats (and torchaudio.compliance.kaldi.fbank):
samples are in int16 scale, frames are cut with a stride view, DC removal,
pre-emphasis and the window are applied to all frames at once, one real FFT covers
every frame of a whole batch of utterances, and the mel filterbank is one cached
matrix product. Per-call overhead is paid once per batch, not once per frame or
utterance, which is where the speed over frame-loop implementations comes from.
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    import torch
# torch is imported where the filterbank runs, not at import: the options, the mel matrix and
# its checks (used by merge steps and configuration code) then load in a fraction of a second.

# Kaldi floors the mel energies at float32 machine epsilon before the log.
_EPS = float(np.finfo(np.float32).eps)
# Dither noise is drawn in blocks of this many frames (see Fbank._frame_slow).
_DITHER_BLOCK = 256


@dataclasses.dataclass(frozen=True)
class FbankOptions:
    """Kaldi's fbank options (names as in conf/fbank.yaml); Kaldi defaults except 80 bins and no dither."""

    sample_rate: int = 16000
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    dither_seed: int = 0
    preemphasis: float = 0.97
    remove_dc_offset: bool = True
    window_type: str = "povey"
    blackman_coeff: float = 0.42
    round_to_power_of_two: bool = True
    low_freq: float = 20.0
    high_freq: float = 0.0
    use_energy: bool = False
    raw_energy: bool = True
    energy_floor: float = 1.0
    htk_compat: bool = False
    use_log_fbank: bool = True
    use_power: bool = True
    snip_edges: bool = True

    @classmethod
    def from_dict(cls, conf: Optional[Dict]) -> "FbankOptions":
        """Builds options from a YAML mapping; an unknown key is an error, not silently ignored."""
        conf = dict(conf or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(conf) - names)
        if unknown:
            raise ValueError(f"unknown fbank option(s) {unknown}; known: {sorted(names)}")
        opts = cls(**conf)
        if opts.window_type not in ("povey", "hamming", "hanning", "rectangular", "blackman", "sine"):
            raise ValueError(f"unknown window_type '{opts.window_type}'")
        if opts.num_mel_bins < 3:
            raise ValueError("num_mel_bins must be at least 3")
        return opts

    @property
    def window_size(self) -> int:
        return int(self.sample_rate * self.frame_length_ms * 0.001)

    @property
    def window_shift(self) -> int:
        return int(self.sample_rate * self.frame_shift_ms * 0.001)

    @property
    def padded_window_size(self) -> int:
        n = self.window_size
        return 1 << (n - 1).bit_length() if self.round_to_power_of_two else n

    @property
    def feat_dim(self) -> int:
        return self.num_mel_bins + (1 if self.use_energy else 0)


def num_frames(num_samples: int, opts: FbankOptions) -> int:
    """Number of frames Kaldi produces for `num_samples` samples."""
    size, shift = opts.window_size, opts.window_shift
    if opts.snip_edges:
        return 0 if num_samples < size else 1 + (num_samples - size) // shift
    return (num_samples + shift // 2) // shift


def _window(opts: FbankOptions) -> np.ndarray:
    n = opts.window_size
    i = np.arange(n, dtype=np.float64)
    a = 2 * math.pi / (n - 1)
    t = opts.window_type
    if t == "hanning":
        w = 0.5 - 0.5 * np.cos(a * i)
    elif t == "hamming":
        w = 0.54 - 0.46 * np.cos(a * i)
    elif t == "povey":
        w = (0.5 - 0.5 * np.cos(a * i)) ** 0.85
    elif t == "rectangular":
        w = np.ones(n)
    elif t == "sine":
        w = np.sin(math.pi * i / (n - 1))
    else:  # blackman
        b = opts.blackman_coeff
        w = b - 0.5 * np.cos(a * i) + (0.5 - b) * np.cos(2 * a * i)
    return w.astype(np.float32)


def _mel(f: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + f / 700.0)


def mel_matrix(opts: FbankOptions) -> np.ndarray:
    """Triangular mel filters as a (num_fft_bins, num_mel_bins) float32 matrix (Nyquist bin included, weight 0)."""
    padded = opts.padded_window_size
    nyquist = 0.5 * opts.sample_rate
    high = opts.high_freq if opts.high_freq > 0 else opts.high_freq + nyquist
    low = opts.low_freq
    if not (0.0 <= low < nyquist and 0.0 < high <= nyquist and low < high):
        raise ValueError(f"bad mel range: low_freq={opts.low_freq} high_freq={opts.high_freq} at {opts.sample_rate} Hz")
    nb = opts.num_mel_bins
    mel_low, mel_high = _mel(np.float64(low)), _mel(np.float64(high))
    delta = (mel_high - mel_low) / (nb + 1)
    b = np.arange(nb, dtype=np.float64)[:, None]
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    m = _mel(opts.sample_rate / padded * np.arange(padded // 2, dtype=np.float64))[None, :]
    up = (m - left) / (center - left)
    down = (right - m) / (right - center)
    w = np.maximum(0.0, np.minimum(up, down))
    out = np.zeros((padded // 2 + 1, nb), dtype=np.float32)
    out[: padded // 2] = w.T
    return out


def narrow_mel_filters(opts: FbankOptions) -> Tuple[int, int]:
    """(filters covering no FFT bin, filters covering at most one) at these options."""
    width = (mel_matrix(opts) > 0).sum(axis=0)
    return int((width == 0).sum()), int((width <= 1).sum())


def mel_filter_warning(opts: FbankOptions) -> Optional[str]:
    """A warning when the mel filters degenerate (too many bins for the FFT resolution), else None.

    At 16 kHz with 80 bins a handful of the lowest filters cover one FFT bin, which is the
    common setup and harmless; at 8 kHz the same 80 bins leave 14 filters on single bins
    (duplicated, highly correlated features): fewer bins are the fix, as Kaldi's 8 kHz
    recipes use (23-40).
    """
    empty, single = narrow_mel_filters(opts)
    if empty == 0 and single <= 0.1 * opts.num_mel_bins:
        return None
    spacing = opts.sample_rate / opts.padded_window_size
    return (f"{single} of {opts.num_mel_bins} mel filters ({empty} empty) cover at most one FFT bin at "
            f"{opts.sample_rate} Hz ({spacing:.1f} Hz per bin): use fewer num_mel_bins (e.g. 40 at 8 kHz, "
            f"the default there without --fbank_conf) or a longer frame_length_ms")


def default_options(fs: int) -> Dict:
    """Fbank options for a sample rate when no fbank config is given.

    80 bins (ESPnet's default) above 8 kHz; at 8 kHz and below, 40 bins up to 200 Hz
    under Nyquist, as Kaldi's 8 kHz (telephone) recipes use.
    """
    if fs <= 8000:
        return {"sample_rate": fs, "num_mel_bins": 40, "high_freq": -200.0}
    return {"sample_rate": fs}


def _band_groups(mel: np.ndarray, num_groups: int) -> List[Tuple[int, int, int, int, torch.Tensor]]:
    """Splits the banded filter matrix into blocks (filters b0:b1 need only FFT bins k0:k1).

    The triangles overlap only their neighbours, so a few dense blocks do the work of
    the full product with ~5x fewer multiply-adds.
    """
    import torch
    nb = mel.shape[1]
    out = []
    for g in range(num_groups):
        b0, b1 = g * nb // num_groups, (g + 1) * nb // num_groups
        nz = np.nonzero(mel[:, b0:b1].any(axis=1))[0]
        k0, k1 = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, 1)
        out.append((b0, b1, k0, k1, torch.from_numpy(np.ascontiguousarray(mel[k0:k1, b0:b1]))))
    return out


class Fbank:
    """Log-mel fbank of int16-scale float waveforms.

    Reuse one instance: window, filters and buffers are cached. Not thread-safe: one
    instance per thread or process.
    """

    # Frames per FFT/filterbank call: large enough to amortise call overhead, small
    # enough that the spectrum stays in cache between the FFT and the filterbank.
    chunk_frames = 1000
    chunks_per_window = 20

    def __init__(self, opts: Optional[FbankOptions] = None) -> None:
        import torch
        self.opts = opts or FbankOptions()
        self._window = _window(self.opts)
        self._window_t = torch.from_numpy(self._window)
        mel = mel_matrix(self.opts)
        self._groups = _band_groups(mel, max(1, self.opts.num_mel_bins // 16))
        self._log_energy_floor = math.log(self.opts.energy_floor) if self.opts.energy_floor > 0 else None
        self._buf = np.zeros((0, self.opts.padded_window_size), dtype=np.float32)
        n = self.chunk_frames
        self._spec = torch.empty(n, self.opts.padded_window_size // 2 + 1, dtype=torch.complex64)
        self._power = torch.empty(n, self.opts.padded_window_size // 2 + 1)

    @property
    def feat_dim(self) -> int:
        return self.opts.feat_dim

    def _padded_wave(self, wave: np.ndarray) -> np.ndarray:
        o = self.opts
        if o.snip_edges:
            return wave
        size, shift = o.window_size, o.window_shift
        pad = size // 2 - shift // 2
        rev = wave[::-1]
        # Kaldi reflects the signal at both ends so frames are centred on multiples of the shift.
        head = rev[len(rev) - pad:] if pad > 0 else np.empty(0, wave.dtype)
        return np.concatenate([head, wave[-pad:] if pad < 0 else wave, rev])

    def _strided(self, wave: np.ndarray, n: int) -> np.ndarray:
        size, shift = self.opts.window_size, self.opts.window_shift
        st = wave.strides[0]
        return np.lib.stride_tricks.as_strided(wave, (n, size), (st * shift, st), writeable=False)

    def __call__(self, wave: np.ndarray, key: str = "") -> np.ndarray:
        return self.compute_many([wave], [key])[0]

    def compute_many(self, waves: Sequence[np.ndarray], keys: Optional[Sequence[str]] = None) -> List[np.ndarray]:
        """Features for several utterances in one pass; returns one (T_i, feat_dim) float32 array each.

        `keys` seed the dither per utterance, so a re-run gives identical features. The
        result of an utterance does not depend on what else is in the batch.
        """
        o = self.opts
        counts = [num_frames(len(w), o) for w in waves]
        total = sum(counts)
        feats = np.empty((total, o.feat_dim), np.float32)
        starts = np.cumsum([0] + counts)
        # Long inputs go through in windows of frames, so memory stays bounded for an
        # hour-long recording; a window may hold parts of several utterances.
        step = self.chunk_frames * self.chunks_per_window
        if self._buf.shape[0] < min(total, step):
            # Columns past window_size stay zero forever: they are the FFT's zero padding.
            self._buf = np.zeros((min(total, step), o.padded_window_size), np.float32)
        first = 0
        cached: Tuple[int, Optional[np.ndarray]] = (-1, None)
        for g0 in range(0, total, step):
            g1 = min(total, g0 + step)
            frames = self._buf[:g1 - g0, :o.window_size]
            energy = np.empty(g1 - g0, np.float32) if o.use_energy else None
            while starts[first + 1] <= g0:
                first += 1
            i = first
            while i < len(waves) and starts[i] < g1:
                a, b = max(g0, starts[i]) - starts[i], min(g1, starts[i + 1]) - starts[i]
                if b > a:
                    if cached[0] != i:
                        cached = (i, self._padded_wave(np.ascontiguousarray(waves[i], dtype=np.float32)))
                    x = cached[1][a * o.window_shift:(b - 1) * o.window_shift + o.window_size]
                    lo, hi = starts[i] + a - g0, starts[i] + b - g0
                    if o.dither != 0.0 or (o.use_energy and o.raw_energy):
                        key = keys[i] if keys is not None else ""
                        self._frame_slow(x, key, a, frames[lo:hi], None if energy is None else energy[lo:hi])
                    else:
                        self._frame_fast(x, b - a, frames[lo:hi])
                i += 1
            if o.use_energy and not o.raw_energy:
                energy[:] = self._floor_log(np.einsum("ij,ij->i", frames, frames))
            out = feats[g0:g1]
            self._filterbank(out[:, 1:] if (o.use_energy and not o.htk_compat) else out[:, :o.num_mel_bins])
            if energy is not None:
                out[:, o.num_mel_bins if o.htk_compat else 0] = energy
        return [feats[s:s + n] for s, n in zip(starts[:-1], counts)]

    def _frame_fast(self, x: np.ndarray, n: int, out: np.ndarray) -> None:
        """Windowed, pre-emphasised, DC-free frames in two passes over the frame matrix.

        Pre-emphasis is done once on the waveform (not once per overlapping frame), the
        first sample of each frame is patched, and since pre-emphasis is linear the frame
        mean is removed afterwards as a rank-1 update of (1 - c) * mean * window.
        """
        import torch
        o = self.opts
        size, shift, c = o.window_size, o.window_shift, o.preemphasis
        w = self._window
        if c != 0.0:
            y = np.empty_like(x)
            np.multiply(x[:-1], c, out=y[1:])
            np.subtract(x[1:], y[1:], out=y[1:])
            y[0] = x[0]
        else:
            y = x
        np.multiply(self._strided(y, n), w, out=out)
        if c != 0.0:
            out[:, 0] = x[0:(n - 1) * shift + 1:shift] * ((1.0 - c) * w[0])
        if o.remove_dc_offset:
            # Frame sums from sums of blocks of gcd(shift, size) samples: one fast reduction over
            # the waveform instead of a float64 cumsum (10x slower) or a pass over all frames.
            g = math.gcd(shift, size)
            nblk = ((n - 1) * shift + size) // g
            blocks = np.zeros(nblk + 1, np.float64)
            blocks[1:] = x[:nblk * g].reshape(nblk, g).sum(axis=1)
            np.cumsum(blocks, out=blocks)
            first = np.arange(n) * (shift // g)
            dc = (blocks[first + size // g] - blocks[first]) / size
            torch.from_numpy(out).addr_(torch.from_numpy((dc * (1.0 - c)).astype(np.float32)), self._window_t,
                                        alpha=-1.0)

    def _frame_slow(self, x: np.ndarray, key: str, first: int, out: np.ndarray,
                    energy: Optional[np.ndarray]) -> None:
        """Frame by frame as Kaldi does it; needed for dither and raw energy. `first` is the utterance frame index."""
        o = self.opts
        c = o.preemphasis
        n = out.shape[0]
        f = self._strided(x, n).copy()
        if o.dither != 0.0:
            # Noise in fixed blocks of frames, each seeded by (seed, utterance, block): the same
            # utterance gets the same noise however the frames were windowed.
            blk = _DITHER_BLOCK
            b0, b1 = first // blk, (first + n - 1) // blk + 1
            key_hash = zlib.crc32(key.encode("utf-8"))
            noise = np.concatenate([np.random.default_rng([o.dither_seed, key_hash, b]).standard_normal(
                (blk, o.window_size), dtype=np.float32) for b in range(b0, b1)])
            f += o.dither * noise[first - b0 * blk: first - b0 * blk + n]
        if o.remove_dc_offset:
            f -= f.mean(axis=1, keepdims=True)
        if o.use_energy and o.raw_energy:
            energy[:] = self._floor_log(np.einsum("ij,ij->i", f, f))
        if c != 0.0:
            f[:, 1:] -= c * f[:, :-1]  # the product is a temporary: each sample sees its original neighbour
            f[:, 0] *= 1.0 - c
        np.multiply(f, self._window, out=out)

    def _filterbank(self, feats: np.ndarray) -> None:
        import torch
        o = self.opts
        total = feats.shape[0]
        buf = torch.from_numpy(self._buf)
        out = torch.from_numpy(feats)
        for s in range(0, total, self.chunk_frames):
            e = min(total, s + self.chunk_frames)
            spec = self._spec[:e - s]
            torch.fft.rfft(buf[s:e], dim=1, out=spec)
            ri = torch.view_as_real(spec)
            p = self._power[:e - s]
            torch.mul(ri[..., 0], ri[..., 0], out=p)
            p.addcmul_(ri[..., 1], ri[..., 1])
            if not o.use_power:
                p.sqrt_()
            for b0, b1, k0, k1, m in self._groups:
                out[s:e, b0:b1] = p[:, k0:k1] @ m
        if o.use_log_fbank:
            out.clamp_(min=_EPS).log_()

    def _floor_log(self, e: np.ndarray) -> np.ndarray:
        e = np.log(np.maximum(e, _EPS)).astype(np.float32)
        if self._log_energy_floor is not None:
            np.maximum(e, self._log_energy_floor, out=e)
        return e
