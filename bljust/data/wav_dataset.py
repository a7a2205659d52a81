"""Waveforms of a Kaldi data directory for upstream training and SUPERB evaluation.

Audio is read lazily (wav.scp paths or `cmd |` pipes, optional segments) because an
unlabeled set does not fit in memory; lengths come from utt2num_samples, segments or
the WAV headers, so batches can be bucketed by length without decoding everything.
Targets, when asked for, are characters of `text` (word boundary "|", as SUPERB's
character ASR) or the space-separated phonemes of `text.phn`.
Samples come back as float32 in [-1, 1] (upstreams are trained on that scale).
"""
from __future__ import annotations

import logging
import os
import random
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch

from bljust.features.audio import AudioError, read_audio, resample
from bljust.utils.fileio import FormatError, atomic_write, iter_table, read_table

log = logging.getLogger(__name__)

BLANK, UNK, WORD_SEP = "<blank>", "<unk>", "|"
UNITS = ("char", "phn")


def text_units(text: str, unit: str) -> List[str]:
    """The target units of one transcript: characters with '|' between words, or phonemes."""
    if unit == "char":
        return list(WORD_SEP.join(text.split()))
    if unit == "phn":
        return text.split()
    raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")


def units_to_text(units: Sequence[str], unit: str) -> str:
    """Inverse of text_units: words for characters, space-separated phonemes for phonemes."""
    if unit == "char":
        return " ".join("".join(units).replace(WORD_SEP, " ").split())
    return " ".join(units)


def text_file(data_dir: str, unit: str) -> str:
    return os.path.join(data_dir, "text" if unit == "char" else "text.phn")


def build_token_list(data_dir: str, unit: str) -> List[str]:
    """<blank>, <unk>, then every unit of the training transcripts in byte order."""
    seen = set()
    for _, value, _ in iter_table(text_file(data_dir, unit), allow_empty_value=True):
        seen.update(text_units(value, unit))
    return [BLANK, UNK] + sorted(seen - {BLANK, UNK})


def write_token_list(tokens: Sequence[str], path: str) -> None:
    with atomic_write(path) as f:
        f.write("".join(t + "\n" for t in tokens))


def read_token_list(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        toks = [ln.rstrip("\n") for ln in f if ln.strip()]
    if toks[:2] != [BLANK, UNK]:
        raise ValueError(f"{path}: token list must start with {BLANK}, {UNK}")
    return toks


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


def bucket_batches(lengths: Sequence[int], max_samples: int, max_batch: int, seed: Optional[int] = None
                   ) -> List[List[int]]:
    """Indices grouped by similar length, each batch's padded size <= max_samples (a
    longer utterance gets a batch of its own); batch order shuffled with `seed`, or
    kept (shortest first) when seed is None."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: List[List[int]] = []
    cur: List[int] = []
    for i in order:
        if cur and (len(cur) + 1 > max_batch or (len(cur) + 1) * lengths[i] > max_samples):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    if seed is not None:
        random.Random(seed).shuffle(batches)
    return batches


def collate(items: Sequence[Tuple[str, torch.Tensor, Optional[List[int]]]]
            ) -> Tuple[List[str], torch.Tensor, torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """-> (utt ids, wavs (B, S) zero-padded, wav lengths, targets (B, U) or None, target lengths)."""
    ids = [u for u, _, _ in items]
    lens = torch.tensor([w.numel() for _, w, _ in items])
    wavs = torch.zeros(len(items), int(lens.max()))
    for j, (_, w, _) in enumerate(items):
        wavs[j, : w.numel()] = w
    if items[0][2] is None:
        return ids, wavs, lens, None, None
    y_lens = torch.tensor([len(t) for _, _, t in items])
    ys = torch.zeros(len(items), int(y_lens.max()), dtype=torch.long)
    for j, (_, _, t) in enumerate(items):
        ys[j, : len(t)] = torch.tensor(t)
    return ids, wavs, lens, ys, y_lens


def iter_batches(ds: WavDataset, batches: List[List[int]], start: int = 0) -> Iterator[Tuple[int, tuple]]:
    """(batch index, collated batch) from batch `start` on."""
    for b in range(start, len(batches)):
        yield b, collate([ds[i] for i in batches[b]])
