"""Speech2Text: transcribe waveforms with a trained bljust model, from a notebook or a script.

    from bljust import Speech2Text
    asr = Speech2Text.from_pretrained("exp/asr_train_supervised")   # or a packed .zip / its folder
    text = asr(waveform, sample_rate)

`path` is an experiment folder (model.pth, config.yaml; the token list found through the
config's token_dir) or a packed model (see bljust.pack: model.safetensors, config.yaml,
tokens.txt, bpe.model, fbank.yaml). Audio of any rate and channel count is converted the
way the model was trained (resampled with torchaudio, down-mixed by averaging channels),
with a log line saying so. Audio longer than `chunk_s` is decoded in overlapping chunks
whose CTC log-probs are joined on the encoder's frame grid (see `chunk_plan`), then
searched once, so nothing is duplicated or dropped at the seams.

Sample scale: integer arrays are taken as int16 samples; float arrays as [-1, 1] audio
(what soundfile, torchaudio and librosa return) and scaled to the int16 range, which is
what Kaldi's fbank (and so the model) was trained on.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from bljust.decode.ctc import Hypothesis, ctc_decode
from bljust.features.fbank import Fbank, FbankOptions, num_frames
from bljust.pack import ModelLoadError, load_model_dir

log = logging.getLogger(__name__)

Audio = Union[np.ndarray, torch.Tensor]


@dataclass
class Chunk:
    start: int      # first sample of the chunk
    end: int        # one past its last sample
    keep_from: int  # global encoder frames [keep_from, keep_to) are taken from this chunk
    keep_to: int


def _out_len(n_frames: int, layers: Sequence[Tuple[int, int]]) -> int:
    for k, s in layers:
        n_frames = (n_frames - k) // s + 1
    return max(n_frames, 0)


def chunk_plan(num_samples: int, opts: FbankOptions, layers: Sequence[Tuple[int, int]],
               chunk_s: float, overlap_s: float) -> List[Chunk]:
    """Overlapping chunks whose kept encoder frames tile [0, N) exactly, N = frames of one full pass.

    Chunks start on multiples of G = (product of the subsampling strides) x frame shift
    samples: then chunk c's encoder frame j is the full pass's frame start/G + j, computed
    from the same fbank frames. Each chunk keeps the frames up to the middle of its overlap
    with the next one, so every kept frame has at least overlap/2 of context on each side.
    """
    stride = int(np.prod([s for _, s in layers]))
    grid = stride * opts.window_shift
    total = _out_len(num_frames(num_samples, opts), layers)
    step = int(round((chunk_s - overlap_s) * opts.sample_rate / grid)) * grid
    size = int(round(chunk_s * opts.sample_rate / grid)) * grid
    half = int(round(overlap_s * opts.sample_rate / grid)) // 2  # encoder frames of context kept per side
    if step <= 0 or half < 2:
        raise ValueError(f"chunk of {chunk_s} s with {overlap_s} s overlap: the overlap must be at least "
                         f"{4 * grid / opts.sample_rate:.2f} s and shorter than the chunk")
    if num_samples <= size:
        return [Chunk(0, num_samples, 0, total)]
    chunks: List[Chunk] = []
    start, keep_from = 0, 0
    while True:
        end = min(start + size, num_samples)
        if end == num_samples or num_samples - (start + step) <= 2 * half * grid:
            chunks.append(Chunk(start, num_samples, keep_from, total))
            return chunks
        keep_to = (start + step) // grid + half
        chunks.append(Chunk(start, end, keep_from, keep_to))
        start, keep_from = start + step, keep_to


def load_audio(spec: str) -> Tuple[np.ndarray, int]:
    """Reads a file path or a wav.scp pipe (`cmd |`) with any channel count: ((samples, channels), rate).

    Samples are float32 in int16 scale, as bljust.features.audio.read_audio gives them.
    """
    import io
    import subprocess

    import soundfile as sf

    from bljust.features.audio import AudioError

    spec = spec.strip()
    what, data = spec, spec
    if spec.endswith("|"):
        cmd = spec[:-1].strip()
        p = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        if p.returncode != 0 or not p.stdout:
            err = p.stderr.decode("utf-8", "replace").strip().splitlines()
            raise AudioError(f"command '{cmd}' failed (exit status {p.returncode})" + (f": {err[-1]}" if err else ""))
        what, data = f"output of '{cmd}'", io.BytesIO(p.stdout)
    elif not os.path.isfile(spec):
        raise AudioError(f"{spec}: audio file not found")
    try:
        with sf.SoundFile(data) as f:
            rate = f.samplerate
            if f.subtype == "PCM_16":
                x = f.read(dtype="int16", always_2d=True).astype(np.float32)
            else:  # libsndfile scales int16 by exactly 1/32768
                x = f.read(dtype="float32", always_2d=True) * np.float32(32768.0)
    except Exception as e:  # noqa: BLE001 - libsndfile reports corrupt and unknown formats with varied types
        raise AudioError(f"{what}: cannot decode audio ({str(e).strip() or type(e).__name__})") from None
    if x.size == 0:
        raise AudioError(f"{what}: no samples")
    return x, rate


class Speech2Text:
    """A CTC model with its tokenizer and feature options; `asr(waveform, rate) -> text`."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, fbank_opts: FbankOptions, config: Dict[str, Any],
                 device: str = "cpu", decode_method: str = "greedy", beam_size: int = 10, nbest: int = 1,
                 chunk_s: float = 30.0, overlap_s: float = 4.0, batch_size: int = 8, source: str = "") -> None:
        if decode_method not in ("greedy", "beam"):
            raise ValueError(f"decode_method {decode_method!r}: greedy or beam")
        if min(beam_size, nbest, batch_size) < 1 or chunk_s <= 0:
            raise ValueError(f"beam_size {beam_size}, nbest {nbest}, batch_size {batch_size} must be >= 1 and "
                             f"chunk_s {chunk_s} > 0")
        if nbest > 1 and decode_method == "greedy":
            raise ValueError("nbest > 1 needs decode_method='beam'")
        if nbest > beam_size:
            raise ValueError(f"nbest {nbest} is larger than beam_size {beam_size}")
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.fbank_opts = fbank_opts
        self.fbank = Fbank(fbank_opts)
        self.config = config
        self.device = device
        self.decode_method, self.beam_size, self.nbest = decode_method, beam_size, nbest
        self.chunk_s, self.overlap_s, self.batch_size = chunk_s, overlap_s, batch_size
        self.source = source
        self.layers = list(model.encoder.subsample.layers)
        chunk_plan(int(chunk_s * fbank_opts.sample_rate) + 1, fbank_opts, self.layers, chunk_s, overlap_s)  # validates

    @property
    def sample_rate(self) -> int:
        return self.fbank_opts.sample_rate

    @classmethod
    def from_pretrained(cls, path: str, device: str = "cpu", token_dir: Optional[str] = None,
                        fbank_conf: Optional[str] = None, **kwargs: Any) -> "Speech2Text":
        """Loads an experiment folder, a packed archive (.zip) or an unpacked archive folder."""

        model, tokenizer, opts, config = load_model_dir(path, token_dir=token_dir, fbank_conf=fbank_conf)
        return cls(model, tokenizer, opts, config, device=device, source=path, **kwargs)

    # -- audio -----------------------------------------------------------------------------------
    def prepare(self, speech: Audio, sample_rate: int, name: str = "input", int16_scale: Optional[bool] = None
                ) -> np.ndarray:
        """Mono float32 samples at the model's rate, in int16 scale.

        speech: (samples,) or (samples, channels) / (channels, samples) (the shorter axis is
        taken as channels). int16_scale: None decides by dtype (integers: int16 samples,
        floats: [-1, 1]); True: floats already in int16 scale (bljust.features.audio.read_audio).
        """
        x = speech.detach().cpu().numpy() if isinstance(speech, torch.Tensor) else np.asarray(speech)
        # decided on the input's dtype (a down-mix of int16 samples is float, still int16 scale)
        scale = 32768.0 if int16_scale is None and np.issubdtype(x.dtype, np.floating) else 1.0
        if x.ndim == 2:
            if x.shape[0] < x.shape[1]:
                x = x.T
            if x.shape[1] > 1:
                log.info("%s: %d channels, down-mixed to mono (mean of the channels)", name, x.shape[1])
            x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
        elif x.ndim != 1:
            raise ValueError(f"{name}: audio must be (samples,) or (samples, channels), got shape {x.shape}")
        x = x.astype(np.float32) * np.float32(scale)
        if sample_rate != self.sample_rate:
            from bljust.features.audio import resample

            log.info("%s: resampled from %d Hz to the model's %d Hz", name, sample_rate, self.sample_rate)
            x = resample(np.ascontiguousarray(x), int(sample_rate), self.sample_rate)
        return x

    # -- decoding --------------------------------------------------------------------------------
    def log_probs(self, waves: Sequence[np.ndarray], names: Optional[Sequence[str]] = None) -> List[torch.Tensor]:
        """CTC log-probs (T', V) per prepared waveform; long ones are decoded in joined chunks."""
        names = list(names or [f"input {i}" for i in range(len(waves))])
        pieces: List[Tuple[int, Chunk, np.ndarray]] = []
        plans: List[List[Chunk]] = []
        for i, x in enumerate(waves):
            if num_frames(len(x), self.fbank_opts) < self._min_frames():
                raise ValueError(f"{names[i]}: too short to decode ({len(x) / self.sample_rate:.3f} s)")
            plan = chunk_plan(len(x), self.fbank_opts, self.layers, self.chunk_s, self.overlap_s)
            if len(plan) > 1:
                log.info("%s: %.1f s, decoded in %d chunks of %.0f s with %.0f s overlap", names[i],
                         len(x) / self.sample_rate, len(plan), self.chunk_s, self.overlap_s)
            plans.append(plan)
            pieces += [(i, c, x[c.start:c.end]) for c in plan]
        feats = self.fbank.compute_many([p[2] for p in pieces], [f"{names[p[0]]}" for p in pieces])
        outs: Dict[int, torch.Tensor] = {}
        order = sorted(range(len(pieces)), key=lambda j: -feats[j].shape[0])
        for b in range(0, len(order), self.batch_size):
            idx = order[b:b + self.batch_size]
            lens = torch.tensor([feats[j].shape[0] for j in idx])
            xb = torch.zeros(len(idx), int(lens.max()), feats[idx[0]].shape[1])
            for k, j in enumerate(idx):
                xb[k, : feats[j].shape[0]] = torch.from_numpy(feats[j])
            with torch.inference_mode():
                enc, enc_lens = self.model.encode(xb.to(self.device), lens.to(self.device))
                lp = self.model.ctc_log_probs(enc).float().cpu()
            for k, j in enumerate(idx):
                outs[j] = lp[k, : int(enc_lens[k])]
        result, j = [], 0
        for plan in plans:
            parts = []
            for c in plan:
                first = c.start // (self.layers_stride * self.fbank_opts.window_shift)
                parts.append(outs[j][c.keep_from - first: c.keep_to - first])
                j += 1
            result.append(torch.cat(parts, dim=0))
        return result

    @property
    def layers_stride(self) -> int:
        return int(np.prod([s for _, s in self.layers]))

    def _min_frames(self) -> int:
        n = 1
        for k, s in reversed(self.layers):
            n = (n - 1) * s + k
        return n

    def decode_log_probs(self, lps: Sequence[torch.Tensor]) -> List[List[Hypothesis]]:
        out: List[List[Hypothesis]] = []
        for lp in lps:  # one at a time: lengths differ a lot, and beam search cost is per frame
            out += ctc_decode(lp[None], torch.tensor([lp.shape[0]]), self.decode_method, self.beam_size,
                              self.nbest, int(getattr(self.tokenizer, "blank_id", 0)))
        return out

    def transcribe(self, waves: Sequence[np.ndarray], names: Optional[Sequence[str]] = None
                   ) -> List[List[Tuple[str, float]]]:
        """n-best (text, score) per prepared waveform (int16 scale, model rate, mono)."""
        nbests = self.decode_log_probs(self.log_probs(waves, names))
        return [[(self.tokenizer.decode(h.tokens), h.score) for h in nb] for nb in nbests]

    def __call__(self, speech: Union[Audio, Sequence[Audio]], sample_rate: int
                 ) -> Union[str, List[str], List[Tuple[str, float]], List[List[Tuple[str, float]]]]:
        """Text of one waveform, or a list of texts for a list of waveforms.

        With nbest > 1: a list of (text, score) per waveform instead of its text.
        """
        batched = isinstance(speech, (list, tuple))
        items = list(speech) if batched else [speech]
        waves = [self.prepare(x, sample_rate, f"input {i}") for i, x in enumerate(items)]
        res = self.transcribe(waves)
        res = [r if self.nbest > 1 else r[0][0] for r in res]
        return res if batched else res[0]
