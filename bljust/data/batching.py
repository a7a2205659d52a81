"""Length-bucketed batches and padding, shared by the feature and the waveform datasets.

Batches are fixed once (sorted by length, cut greedily so that the padded size
max_len * n_utts stays under `batch_bins`: frames for features, samples for
waveforms); only their order changes per epoch. The order of epoch e depends only on
(seed, e), so a resumed run needs nothing but the epoch and the position within it.
pad_list turns a batch of variable-length items into one zero-padded tensor.
"""
from __future__ import annotations

import logging
import random
from typing import Dict, Hashable, List, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np
import torch

logger = logging.getLogger(__name__)


K = TypeVar("K", bound=Hashable)


def make_batches(
    lengths: Dict[K, int],
    batch_bins: int,
    max_batch_size: int = 0,
    min_batch_size: int = 1,
    longest_first: bool = True,
) -> List[List[K]]:
    """Groups utterance keys into batches of similar length.

    batch_bins: max of (longest utterance's length x number of utterances).
    min_batch_size: every batch holds at least this many utterances (the number of
    data-parallel ranks, so each rank gets a share of every batch).
    longest_first: cut from the longest utterances down (False: from the shortest up);
    ties are broken by key.
    """
    if batch_bins <= 0:
        raise ValueError(f"batch_bins must be positive, got {batch_bins}")
    sign = -1 if longest_first else 1
    order = sorted(lengths, key=lambda k: (sign * lengths[k], k))
    batches: List[List[K]] = []
    cur: List[K] = []
    cur_max = 0
    oversize = 0
    for k in order:
        n = lengths[k]
        new_max = max(cur_max, n)
        full = max_batch_size > 0 and len(cur) >= max_batch_size
        if cur and (full or new_max * (len(cur) + 1) > batch_bins) and len(cur) >= min_batch_size:
            batches.append(cur)
            cur, new_max = [], n
        if not cur and n > batch_bins:
            oversize += 1
        cur.append(k)
        cur_max = new_max
    if cur:
        if len(cur) < min_batch_size and batches:
            batches[-1].extend(cur)
        else:
            batches.append(cur)
    if batches and len(batches[-1]) < min_batch_size:
        raise ValueError(f"only {len(lengths)} utterances, fewer than the {min_batch_size} ranks")
    if oversize:
        logger.warning("%d utterances are longer than batch_bins=%d and go in batches of their own", oversize, batch_bins)
    return batches


def bucket_batches(lengths: Sequence[int], max_samples: int, max_batch: int, seed: Optional[int] = None
                   ) -> List[List[int]]:
    """Indices of a list-indexed dataset grouped by similar length (shortest first), each
    batch's padded size <= max_samples (a longer utterance gets a batch of its own), at
    most max_batch per batch; the batch order shuffled with `seed`, or kept when None."""
    batches = make_batches(dict(enumerate(lengths)), max_samples, max_batch, longest_first=False)
    if seed is not None:
        random.Random(seed).shuffle(batches)
    return batches


def _as_tensor(x: Union[torch.Tensor, np.ndarray, Sequence[int]]) -> torch.Tensor:
    if isinstance(x, np.ndarray) and not x.flags.writeable:  # kaldiio's memory-mapped matrices
        x = x.copy()
    return torch.as_tensor(x)


def pad_list(items: Sequence[Union[torch.Tensor, np.ndarray, Sequence[int]]], pad_value: float = 0,
             min_len: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, L, ...) padded along the first axis of each item (at least min_len long), and the
    lengths (B,) as int64. Items are tensors, arrays or lists of ints; all share dtype and
    trailing shape (features (T, D), waveforms (S,), token ids (U,))."""
    if not items:
        raise ValueError("empty batch")
    ts = [_as_tensor(x) for x in items]
    lens = torch.tensor([t.shape[0] for t in ts], dtype=torch.long)
    out = ts[0].new_full((len(ts), max(int(lens.max()), min_len), *ts[0].shape[1:]), pad_value)
    for i, t in enumerate(ts):
        out[i, : t.shape[0]] = t
    return out, lens


def epoch_order(num_batches: int, seed: int, epoch: int) -> List[int]:
    """The batch order of an epoch: a permutation drawn from its own generator."""
    g = torch.Generator()
    g.manual_seed(seed * 100003 + epoch)
    return torch.randperm(num_batches, generator=g).tolist()


def shard(batch: Sequence[str], rank: int, world_size: int) -> List[str]:
    """This rank's part of a global batch (every rank gets at least one utterance)."""
    return list(batch[rank::world_size])


class BucketBatchSampler:
    """Yields this rank's share of each batch of an epoch, starting at `start` (for resume)."""

    def __init__(self, batches: List[List[str]], seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.batches = batches
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 1
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def global_batches(self) -> List[List[str]]:
        order = epoch_order(len(self.batches), self.seed, self.epoch)
        return [self.batches[i] for i in order[self.start:]]

    def __iter__(self):
        for b in self.global_batches():
            yield shard(b, self.rank, self.world_size)

    def __len__(self) -> int:
        return len(self.batches) - self.start


class BucketCursor:
    """Endless length-bucketed epochs of bucket_batches (reshuffled with seed + epoch). The
    position {"epoch", "batch"} is the caller's (checkpointed) state; an epoch's batches are
    computed once, not at every step."""

    def __init__(self, lengths: Sequence[int], max_samples: int, max_batch: int, seed: int) -> None:
        self.lengths, self.max_samples, self.max_batch, self.seed = lengths, int(max_samples), int(max_batch), int(seed)
        self._epoch, self._batches = -1, []

    def next(self, pos: dict) -> List[int]:
        """The batch at `pos` (indices into lengths); advances pos in place."""
        while True:
            if self._epoch != pos["epoch"]:
                self._epoch = pos["epoch"]
                self._batches = bucket_batches(self.lengths, self.max_samples, self.max_batch, seed=self.seed + self._epoch)
            if pos["batch"] < len(self._batches):
                break
            pos["epoch"], pos["batch"] = pos["epoch"] + 1, 0
        pos["batch"] += 1
        return self._batches[pos["batch"] - 1]
