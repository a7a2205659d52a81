"""Labelled feature dataset over a Kaldi feature dir (feats.scp, utt2num_frames, text)."""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Dict, List, Protocol, Sequence, Tuple

import numpy as np
import torch

from bljust.data.ark import load_mat
from bljust.utils.fileio import FormatError, read_table

logger = logging.getLogger(__name__)


class TextEncoder(Protocol):
    def encode(self, text: str) -> List[int]: ...


class ASRDataset(torch.utils.data.Dataset):
    """Indexed by utterance id; yields (utt_id, feats (T, D) float32, token ids)."""

    def __init__(self, data_dir: str, tokenizer: TextEncoder | None, min_frames: int = 0, max_frames: int = 0,
                 labeled: bool = True) -> None:
        """labeled=False: audio-only data (the unlabeled set of semi-supervised training);
        no text is read and every item's token list is empty."""
        self.data_dir = data_dir
        scp = os.path.join(data_dir, "feats.scp")
        if not os.path.isfile(scp):
            raise FileNotFoundError(f"{scp} not found (run the feature extraction stage first)")
        self.scp = read_table(scp)
        text_path = os.path.join(data_dir, "text")
        texts = read_table(text_path, allow_empty_value=True) if labeled and os.path.isfile(text_path) else {}
        n2f = os.path.join(data_dir, "utt2num_frames")
        if os.path.isfile(n2f):
            lengths = {}
            for k, v in read_table(n2f).items():
                try:
                    lengths[k] = int(v)
                except ValueError:
                    raise FormatError(n2f, 0, f"'{k}': frame count '{v}' is not an integer") from None
        else:
            logger.warning("%s missing: reading every feature matrix for its length", n2f)
            lengths = {k: int(load_mat(v).shape[0]) for k, v in self.scp.items()}
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
        for n, why in ((no_text, "no transcription in text"), (no_len, "no entry in utt2num_frames"),
                       (bad_len, f"length outside [{min_frames}, {max_frames or 'inf'}] frames")):
            if n:
                logger.warning("%s: skipped %d utterances with %s", data_dir, n, why)
        if not self.lengths:
            raise ValueError(f"{data_dir}: no usable utterances")
        first = next(iter(self.lengths))
        self.feat_dim = int(self[first][1].shape[1])  # a damaged ark is named with its utterance

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, key: str) -> Tuple[str, np.ndarray, List[int]]:
        """The features may be a read-only view of the bytes read (no copy: collate copies them once)."""
        try:
            x = load_mat(self.scp[key])
        except Exception as e:  # kaldiio raises assorted types for a damaged ark
            raise IOError(f"{self.data_dir}: cannot read features of '{key}' ({self.scp[key]}): {e}") from e
        return key, np.asarray(x, dtype=np.float32), self.ids[key]


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
