"""Waveforms of a Kaldi data directory for upstream training and SUPERB evaluation.

Audio is read lazily (wav.scp paths or `cmd |` pipes, optional segments) because an
unlabeled set does not fit in memory; lengths come from utt2num_samples, segments or
the WAV headers, so batches can be bucketed by length without decoding everything.
Targets, when asked for, are characters of `text` (word boundary "|", as SUPERB's
character ASR) or the space-separated phonemes of `text.phn` (bljust.text.units).
Batches come from bljust.data.batching.bucket_batches, padding from its pad_list.
Samples come back as float32 in [-1, 1] (upstreams are trained on that scale).
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch

from bljust.data.batching import pad_list
from bljust.features.audio import AudioError, read_audio, resample
from bljust.text.units import text_units, units_token_list
from bljust.utils.fileio import FormatError, iter_table, read_table

log = logging.getLogger(__name__)


def text_file(data_dir: str, unit: str) -> str:
    return os.path.join(data_dir, "text" if unit == "char" else "text.phn")


def build_token_list(data_dir: str, unit: str) -> List[str]:
    """<blank>, <unk>, then every unit of the data dir's transcripts (text or text.phn)."""
    return units_token_list((v for _, v, _ in iter_table(text_file(data_dir, unit), allow_empty_value=True)), unit)


class WavDataset:
    """Utterances of a data dir: `self[i]` -> (utt_id, waveform (S,), target ids or None)."""

    def __init__(self, data_dir: str, unit: Optional[str] = None, tokens: Optional[Sequence[str]] = None,
                 fs: int = 16000, min_samples: int = 400, max_samples: int = 0) -> None:
        self.data_dir, self.fs, self.unit = data_dir, fs, unit
        wav_scp = os.path.join(data_dir, "wav.scp")
        if not os.path.isfile(wav_scp):
            raise FileNotFoundError(f"{wav_scp} not found")
        self.wav = read_table(wav_scp)
        seg_path = os.path.join(data_dir, "segments")
        self.segments: Dict[str, Tuple[str, float, float]] = {}
        if os.path.isfile(seg_path):
            for utt, value, lineno in iter_table(seg_path):
                parts = value.split()
                try:
                    self.segments[utt] = (parts[0], float(parts[1]), float(parts[2]))
                except (IndexError, ValueError):
                    raise FormatError(seg_path, lineno, f"expected '<utt> <rec> <start> <end>', got '{value}'") from None
        utts = sorted(self.segments) if self.segments else sorted(self.wav)
        lengths = self._lengths(utts)
        targets: Dict[str, List[int]] = {}
        if unit is not None:
            if tokens is None:
                raise ValueError("targets need a token list")
            index = {t: i for i, t in enumerate(tokens)}
            for utt, value, _ in iter_table(text_file(data_dir, unit), allow_empty_value=True):
                targets[utt] = [index.get(u, 1) for u in text_units(value, unit)]
        keep, skipped = [], {}
        for u in utts:
            n = lengths.get(u, 0)
            why = ("no transcript" if unit is not None and not targets.get(u) else
                   "shorter than one frame" if n < min_samples else
                   "longer than max_samples" if max_samples and n > max_samples else "")
            if why:
                skipped[why] = skipped.get(why, 0) + 1
            else:
                keep.append(u)
        for why, n in skipped.items():
            log.warning("%s: skipped %d utterances (%s)", data_dir, n, why)
        if not keep:
            raise ValueError(f"{data_dir}: no usable utterances")
        self.utts = keep
        self.lengths = [lengths[u] for u in keep]
        self.targets = [targets.get(u) for u in keep]

    def _lengths(self, utts: List[str]) -> Dict[str, int]:
        known: Dict[str, int] = {}
        n2s = os.path.join(self.data_dir, "utt2num_samples")
        if os.path.isfile(n2s):
            known = {k: int(v) for k, v in read_table(n2s).items()}
        out: Dict[str, int] = {}
        for u in utts:
            if u in known:
                out[u] = known[u]
            elif u in self.segments:
                _, b, e = self.segments[u]
                out[u] = int((e - b) * self.fs) if e > 0 else self._rec_len(self.segments[u][0]) - int(b * self.fs)
            else:
                out[u] = self._rec_len(u)
        return out

    def _rec_len(self, rec: str) -> int:
        spec = self.wav.get(rec, "")
        try:
            if not spec.endswith("|"):
                info = sf.info(spec)
                return int(info.frames * self.fs / info.samplerate)
            return len(self._read_rec(rec))
        except (RuntimeError, AudioError, OSError) as e:
            log.warning("%s: recording %s unreadable (%s)", self.data_dir, rec, e)
            return 0

    def _read_rec(self, rec: str) -> np.ndarray:
        x, rate = read_audio(self.wav[rec])
        if x.ndim > 1:
            x = x[:, 0]
        if rate != self.fs:
            x = resample(x.astype(np.float32), rate, self.fs)
        return x

    def __len__(self) -> int:
        return len(self.utts)

    def load(self, i: int) -> torch.Tensor:
        utt = self.utts[i]
        if utt in self.segments:
            rec, b, e = self.segments[utt]
            x = self._read_rec(rec)
            x = x[int(b * self.fs): (len(x) if e < 0 else int(e * self.fs))]
        else:
            x = self._read_rec(utt)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) / 32768.0

    def __getitem__(self, i: int) -> Tuple[str, torch.Tensor, Optional[List[int]]]:
        return self.utts[i], self.load(i), self.targets[i]


def collate(items: Sequence[Tuple[str, torch.Tensor, Optional[List[int]]]]
            ) -> Tuple[List[str], torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """-> (utt ids, wavs (B, S) zero-padded, wav lengths, targets (B, U) or None, target lengths)."""
    wavs, lens = pad_list([w for _, w, _ in items])
    if items[0][2] is None:
        return [u for u, _, _ in items], wavs, lens, None, None
    ys, y_lens = pad_list([torch.tensor(t, dtype=torch.long) for _, _, t in items])
    return [u for u, _, _ in items], wavs, lens, ys, y_lens


def iter_batches(ds: WavDataset, batches: List[List[int]], start: int = 0) -> Iterator[Tuple[int, tuple]]:
    """(batch index, collated batch) from batch `start` on."""
    for b in range(start, len(batches)):
        yield b, collate([ds[i] for i in batches[b]])
