"""Labelled feature dataset over a feature dir: dumped (feats.scp) or raw (wav.scp + utt2num_samples).

A raw dir (stage 3 with --feats_type raw) holds audio references instead of features;
its feats_conf.yaml names the fbank options, and FeatureReader computes exactly the fbank
a dump would hold (bljust/features/fbank.py, dither seeded by utterance id) when an
utterance is loaded, in the data loader's worker processes. With on_device=True the
dataset yields the waveform instead, as a (samples, 1) array, and the trainer computes
the fbank on its device (bljust/nets/frontend.py).
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np
import torch
import yaml

from bljust.data.ark import load_mat
from bljust.features.audio import AudioError, UtteranceReader
from bljust.features.fbank import Fbank, FbankOptions, num_frames
from bljust.utils.fileio import FormatError, read_table
from bljust.utils.model_info import FEATS_CONF

logger = logging.getLogger(__name__)


class TextEncoder(Protocol):
    def encode(self, text: str) -> List[int]: ...


def _int_table(path: str, what: str) -> Dict[str, int]:
    out = {}
    for k, v in read_table(path).items():
        try:
            out[k] = int(v)
        except ValueError:
            raise FormatError(path, 0, f"'{k}': {what} '{v}' is not an integer") from None
    return out


class FeatureReader:
    """fbank matrices of the utterances of a feature dir, dumped or raw.

    `lengths` are frame counts without reading any audio or matrix (utt2num_frames, or
    for raw dirs utt2num_samples through the fbank's frame count).
    """

    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        scp = os.path.join(data_dir, "feats.scp")
        self.raw = not os.path.isfile(scp)
        self.fbank_opts: Optional[FbankOptions] = None
        self._fbank: Optional[Fbank] = None
        self._audio: Optional[UtteranceReader] = None
        if not self.raw:
            self.entries = read_table(scp)
            return
        info_path = os.path.join(data_dir, FEATS_CONF)
        n2s = os.path.join(data_dir, "utt2num_samples")
        if not (os.path.isfile(os.path.join(data_dir, "wav.scp")) and os.path.isfile(n2s)):
            raise FileNotFoundError(f"{scp} not found, and {data_dir} is no raw feature dir (wav.scp and "
                                    "utt2num_samples): run the feature stage (asr.sh stage 3) first")
        if not os.path.isfile(info_path):
            raise FileNotFoundError(f"{info_path} not found: a raw feature dir names its fbank options there "
                                    "(written by asr.sh stage 3 with --feats_type raw)")
        with open(info_path, encoding="utf-8") as f:
            info = yaml.safe_load(f) or {}
        try:
            self.fbank_opts = FbankOptions.from_dict(info.get("fbank") or {})
        except (TypeError, ValueError) as e:
            raise ValueError(f"{info_path}: bad fbank options: {e}") from None
        self.fs = int(info.get("fs", self.fbank_opts.sample_rate))
        self.resample = bool(info.get("resample", False))
        self.num_samples = _int_table(n2s, "sample count")
        self.entries = {k: str(v) for k, v in self.num_samples.items()}

    @property
    def feat_dim(self) -> int:
        if self.raw:
            return self.fbank_opts.feat_dim
        return int(self.load(next(iter(self.entries))).shape[1])

    def lengths(self) -> Dict[str, int]:
        if self.raw:
            return {k: num_frames(n, self.fbank_opts) for k, n in self.num_samples.items()}
        n2f = os.path.join(self.data_dir, "utt2num_frames")
        if os.path.isfile(n2f):
            return _int_table(n2f, "frame count")
        logger.warning("%s missing: reading every feature matrix for its length", n2f)
        return {k: int(load_mat(v).shape[0]) for k, v in self.entries.items()}

    def waveform(self, key: str) -> np.ndarray:
        """int16-scale float32 samples of a raw dir's utterance."""
        if self._audio is None:  # made in the process that reads (a loader worker), not pickled to it
            self._audio = UtteranceReader(self.data_dir, self.fs, self.resample)
        try:
            return self._audio.read(key)
        except AudioError as e:
            raise IOError(str(e)) from None

    def load(self, key: str) -> np.ndarray:
        """(T, D) float32 fbank of one utterance."""
        if self.raw:
            if self._fbank is None:
                self._fbank = Fbank(self.fbank_opts)
            return self._fbank(self.waveform(key), key)
        try:
            return np.asarray(load_mat(self.entries[key]), dtype=np.float32)
        except Exception as e:  # kaldiio raises assorted types for a damaged ark
            raise IOError(f"{self.data_dir}: cannot read features of '{key}' ({self.entries[key]}): {e}") from e

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, "_fbank": None, "_audio": None}


class ASRDataset(torch.utils.data.Dataset):
    """Indexed by utterance id; yields (utt_id, feats (T, D) float32, token ids)."""

    def __init__(self, data_dir: str, tokenizer: TextEncoder | None, min_frames: int = 0, max_frames: int = 0,
                 labeled: bool = True, on_device: bool = False) -> None:
        """labeled=False: audio-only data (the unlabeled set of semi-supervised training);
        no text is read and every item's token list is empty. on_device (raw dirs only):
        items hold the (samples, 1) waveform, for FbankFrontend on the training device."""
        self.data_dir = data_dir
        self.reader = FeatureReader(data_dir)
        self.scp = self.reader.entries
        if on_device and not self.reader.raw:
            raise ValueError(f"{data_dir} holds dumped features: frontend.on_device needs raw input "
                             "(asr.sh --feats_type raw)")
        self.on_device = on_device
        text_path = os.path.join(data_dir, "text")
        texts = read_table(text_path, allow_empty_value=True) if labeled and os.path.isfile(text_path) else {}
        lengths = self.reader.lengths()
        self.texts: Dict[str, str] = {}
        self.ids: Dict[str, List[int]] = {}
        self.lengths: Dict[str, int] = {}
        no_text = no_len = bad_len = 0
        for k in self.scp:
            if labeled and k not in texts:
                no_text += 1
                continue
            if k not in lengths:
                no_len += 1
                continue
            n = lengths[k]
            if (min_frames and n < min_frames) or (max_frames and n > max_frames):
                bad_len += 1
                continue
            if labeled:
                self.texts[k] = texts[k]
                self.ids[k] = tokenizer.encode(texts[k])
            else:
                self.ids[k] = []
            self.lengths[k] = n
        for n, why in ((no_text, "no transcription in text"),
                       (no_len, "no entry in " + ("utt2num_samples" if self.reader.raw else "utt2num_frames")),
                       (bad_len, f"length outside [{min_frames}, {max_frames or 'inf'}] frames")):
            if n:
                logger.warning("%s: skipped %d utterances with %s", data_dir, n, why)
        if not self.lengths:
            raise ValueError(f"{data_dir}: no usable utterances")
        first = next(iter(self.lengths))
        # raw: from the fbank options; dumped: a damaged ark is named with its utterance
        self.feat_dim = self.reader.feat_dim if self.reader.raw else int(self.reader.load(first).shape[1])

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, key: str) -> Tuple[str, np.ndarray, List[int]]:
        """The features may be a read-only view of the bytes read (no copy: collate copies them once)."""
        if self.on_device:
            return key, self.reader.waveform(key)[:, None], self.ids[key]
        return key, self.reader.load(key), self.ids[key]


def _batch_tensor(shape: Tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Uninitialised; in a DataLoader worker it lives in shared memory from the start, so the
    batch reaches the training process without the copy into shared memory that the worker's
    queue would otherwise make (torch's default_collate does the same)."""
    if torch.utils.data.get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


def collate(items: Sequence[Tuple[str, np.ndarray, List[int]]]) -> Dict[str, Any]:
    """Pads features with zeros and token ids with 0 (ignored past y_lens by ctc_loss)."""
    keys = [k for k, _, _ in items]
    flens = torch.tensor([x.shape[0] for _, x, _ in items], dtype=torch.long)
    ylens = torch.tensor([len(y) for _, _, y in items], dtype=torch.long)
    feats = _batch_tensor((len(items), int(flens.max()), items[0][1].shape[1]), torch.float32)
    out = feats.numpy()  # each utterance is written once; only the padding is zeroed
    ys = torch.zeros(len(items), max(1, int(ylens.max())), dtype=torch.long)
    for i, (_, x, y) in enumerate(items):
        out[i, : x.shape[0]] = x
        out[i, x.shape[0]:] = 0.0
        ys[i, : len(y)] = torch.tensor(y, dtype=torch.long)
    return {"keys": keys, "feats": feats, "feat_lens": flens, "ys": ys, "y_lens": ylens}


def sample_global_stats(data_dir: str, num_utts: int = 0, seed: int = 0) -> Tuple[np.ndarray, int]:
    """Global CMVN stats (Kaldi's 2 x (D+1)) over `num_utts` utterances of a feature dir drawn
    with `seed` (0: all of them), read in C order. For raw input this is the only pass
    over the audio before training, so a sample of a large corpus keeps it short: the
    mean and variance of 80 log-mel bins settle within a few hundred utterances."""
    import time

    import humanfriendly

    from bljust.features.cmvn import accumulate

    reader = FeatureReader(data_dir)
    keys = sorted(reader.entries, key=lambda k: k.encode("utf-8"))
    if not keys:
        raise ValueError(f"{data_dir}: no utterances")
    if 0 < num_utts < len(keys):
        pick = np.random.default_rng(seed).choice(len(keys), num_utts, replace=False)
        keys = [keys[i] for i in sorted(pick)]
    stats, t0, failed = None, time.perf_counter(), 0
    for i, k in enumerate(keys):
        try:
            stats = accumulate(stats, reader.load(k))
        except IOError as e:
            failed += 1
            logger.warning("CMVN: skipping %s", e)
        if (i + 1) % 1000 == 0:
            logger.info("CMVN: %d of %d utterances in %s", i + 1, len(keys),
                        humanfriendly.format_timespan(time.perf_counter() - t0))
    if stats is None:
        raise ValueError(f"{data_dir}: none of the {len(keys)} utterances could be read")
    logger.info("CMVN stats over %d of %d utterances (%d frames; %d unreadable skipped) of %s", len(keys) - failed,
                len(reader.entries), int(stats[0, -1]), failed, data_dir)
    return stats, len(keys) - failed
