"""Length-bucketed batches by frame count, reshuffled per epoch with a seeded generator.

Batches are fixed once (sorted by length, cut greedily so that the padded size
max_len * n_utts stays under `batch_bins`); only their order changes per epoch.
The order of epoch e depends only on (seed, e), so a resumed run needs nothing
but the epoch and the position within it.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Sequence

import torch

logger = logging.getLogger(__name__)


def make_batches(
    lengths: Dict[str, int],
    batch_bins: int,
    max_batch_size: int = 0,
    min_batch_size: int = 1,
) -> List[List[str]]:
    """Groups utterance ids into batches of similar length.

    batch_bins: max of (longest utterance's frames x number of utterances).
    min_batch_size: every batch holds at least this many utterances (the number of
    data-parallel ranks, so each rank gets a share of every batch).
    """
    if batch_bins <= 0:
        raise ValueError(f"batch_bins must be positive, got {batch_bins}")
    order = sorted(lengths, key=lambda k: (-lengths[k], k))
    batches: List[List[str]] = []
    cur: List[str] = []
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
        logger.warning("%d utterances are longer than batch_bins=%d frames and go in batches of their own", oversize, batch_bins)
    return batches


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
