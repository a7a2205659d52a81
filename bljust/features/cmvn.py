"""CMVN statistics in Kaldi's format and the mean / inverse std the trainer normalises with.

Three kinds, as Kaldi and ESPnet users know them (asr.sh --cmvn_type):
  global     one set of stats over the training set, applied inside the model (default);
  speaker    each speaker's features normalised with that speaker's own stats (Kaldi's
             apply-cmvn --utt2spk), at feature extraction, for every set alike;
  utterance  each utterance normalised with its own stats.
Speaker and utterance CMVN are applied to the dumped features, so training and decoding
read the same normalised features; the model's global stats then come out near
identity and change little.

A stats matrix is 2 x (D+1) float64: row 0 holds the per-dimension sums and the
frame count in its last column, row 1 the sums of squares (last column 0).
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Tuple

import kaldiio
import numpy as np
from typeguard import typechecked

from bljust.utils.fileio import atomic_write, read_table, write_table

log = logging.getLogger(__name__)


def accumulate(stats: Optional[np.ndarray], feats: np.ndarray) -> np.ndarray:
    """Adds a (T, D) matrix to a 2 x (D+1) stats matrix (created when None)."""
    f = np.asarray(feats, dtype=np.float64)
    if stats is None:
        stats = np.zeros((2, f.shape[1] + 1), np.float64)
    elif stats.shape[1] != f.shape[1] + 1:
        raise ValueError(f"feature dim {f.shape[1]} does not match the stats dim {stats.shape[1] - 1}")
    stats[0, :-1] += f.sum(axis=0)
    stats[1, :-1] += np.einsum("ij,ij->j", f, f)
    stats[0, -1] += f.shape[0]
    return stats


@typechecked
def compute_stats(feats_scp: str, utt2spk: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Stats over every matrix of `feats_scp`: {"global": stats}, or {spk: stats} when utt2spk is given."""
    spk_of = read_table(utt2spk) if utt2spk else None
    out: Dict[str, np.ndarray] = {}
    n = 0
    for utt, mat in kaldiio.load_scp_sequential(feats_scp):
        if spk_of is not None and utt not in spk_of:
            raise ValueError(f"utterance '{utt}' of {feats_scp} is not in {utt2spk}")
        key = spk_of[utt] if spk_of is not None else "global"
        out[key] = accumulate(out.get(key), mat)
        n += 1
    if n == 0:
        raise ValueError(f"{feats_scp} lists no features")
    log.info("accumulated CMVN stats over %d utterances, %d frames", n, int(sum(s[0, -1] for s in out.values())))
    return out


def read_stats(path: str) -> np.ndarray:
    """One 2 x (D+1) stats matrix (a bare matrix, as compute-cmvn-stats writes a global file, or a
    one-entry ark), checked: a clear error naming the file instead of wrong statistics."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CMVN stats file not found: {path}")
    try:
        stats = kaldiio.load_mat(path)
    except Exception:
        try:
            entries = list(kaldiio.load_ark(path))
        except Exception as e:  # kaldiio raises assorted errors on a damaged file
            raise ValueError(f"{path}: not a Kaldi stats matrix ({e})") from None
        if len(entries) != 1:
            raise ValueError(f"{path}: expected one global stats matrix, found {len(entries)}") from None
        stats = entries[0][1]
    stats = np.asarray(stats, dtype=np.float64)
    if stats.ndim != 2 or stats.shape[0] != 2 or stats.shape[1] < 2:
        raise ValueError(f"{path}: expected a 2 x (D+1) CMVN stats matrix, got shape {stats.shape}")
    return stats


def sum_stats(paths: List[str]) -> np.ndarray:
    """Kaldi's sum-matrices for stats files of one feature dimension, in the order given."""
    total = None
    for path in paths:
        stats = read_stats(path)
        if total is not None and stats.shape != total.shape:
            raise ValueError(f"{path}: stats of dimension {stats.shape[1] - 1}, the others have {total.shape[1] - 1}")
        total = stats if total is None else total + stats
    if total is None or total[0, -1] <= 0:
        raise ValueError(f"{' '.join(paths)}: the stats count no frames")
    return total


def write_global(path: str, stats: np.ndarray) -> None:
    """Writes one stats matrix (no key), as Kaldi's compute-cmvn-stats does for a global file."""
    with atomic_write(path, "wb", encoding=None) as f:
        kaldiio.save_mat(f, stats)


def write_per_key(ark: str, scp: str, stats: Dict[str, np.ndarray]) -> None:
    """Writes {key: stats} as an ark and an scp pointing into it (both atomically)."""
    rows = []
    with atomic_write(ark, "wb", encoding=None) as f:
        for key in sorted(stats, key=lambda s: s.encode("utf-8")):
            f.write(key.encode("utf-8") + b" ")
            rows.append((key, f"{ark}:{f.tell()}"))
            kaldiio.save_mat(f, stats[key])
    write_table(scp, rows)


CMVN_TYPES = ("global", "speaker", "utterance")


@typechecked
def apply_per_key(feats_scp: str, out_ark: str, out_scp: str, stats: Dict[str, np.ndarray],
                  key_of: Dict[str, str], std_floor: float = 1e-3) -> int:
    """Writes every matrix of feats_scp normalised with stats[key_of[utt]] to out_ark/out_scp.

    The ark is written under a temporary name and renamed, then the scp; returns the count.
    """
    rows = []
    norm = {k: stats_to_mean_istd(v, std_floor) for k, v in stats.items()}
    with atomic_write(out_ark, "wb", encoding=None) as f:
        for utt, mat in kaldiio.load_scp_sequential(feats_scp):
            if utt not in key_of or key_of[utt] not in norm:
                raise ValueError(f"utterance '{utt}' of {feats_scp} has no CMVN stats")
            mean, istd = norm[key_of[utt]]
            f.write(utt.encode("utf-8") + b" ")
            rows.append((utt, f"{out_ark}:{f.tell()}"))
            kaldiio.save_mat(f, apply_cmvn(np.asarray(mat, np.float32), mean, istd).astype(np.float32))
    write_table(out_scp, rows)
    return len(rows)


def stats_to_mean_istd(stats: np.ndarray, std_floor: float = 1e-3) -> Tuple[np.ndarray, np.ndarray]:
    count = stats[0, -1]
    if count <= 0:
        raise ValueError("CMVN stats have a frame count of 0")
    mean = stats[0, :-1] / count
    var = stats[1, :-1] / count - mean * mean
    std = np.maximum(np.sqrt(np.maximum(var, 0.0)), std_floor)
    return mean.astype(np.float32), (1.0 / std).astype(np.float32)


def read_global_cmvn(path: str, std_floor: float = 1e-3) -> Tuple[np.ndarray, np.ndarray]:
    """(mean, istd) as float32 vectors from a global stats file (a bare matrix or a one-entry ark)."""
    return stats_to_mean_istd(read_stats(path), std_floor)


def apply_cmvn(feats: np.ndarray, mean: np.ndarray, istd: np.ndarray) -> np.ndarray:
    return (feats - mean) * istd


