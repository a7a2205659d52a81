"""Dropping utterances a CTC model cannot train on: too short for the encoder's
subsampling, too long for memory, no transcript, or more tokens than frames.

filter_data_dir filters a whole data dir into a new one and lists what it dropped, and
why, in <out_dir>/filtered.txt (reasons: no_features, too_short, too_long, empty_text,
ctc_infeasible).
"""
from __future__ import annotations

import logging
import os
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

from typeguard import typechecked

from bljust.data.datadir import FEATURE_INFO_FILES, DataDir
from bljust.utils.fileio import FormatError, atomic_write, read_table

log = logging.getLogger(__name__)

# (kernel, stride) of each time-reducing Conv2d; must match bljust/nets/subsampling.py
# (a test checks that both give the same minimum lengths).
SUBSAMPLING_LAYERS: Dict[int, Tuple[Tuple[int, int], ...]] = {
    1: (),
    2: ((3, 2),),
    4: ((3, 2), (3, 2)),
    6: ((3, 2), (5, 3)),
    8: ((3, 2), (3, 2), (3, 2)),
}


def _layers(factor: int) -> Tuple[Tuple[int, int], ...]:
    if factor not in SUBSAMPLING_LAYERS:
        raise ValueError(f"subsampling factor must be one of {sorted(SUBSAMPLING_LAYERS)}, got {factor}")
    return SUBSAMPLING_LAYERS[factor]


def frames_after_subsampling(frames: int, factor: int) -> int:
    """Output length of the valid-convolution chain: T -> floor((T - k) / s) + 1 per layer."""
    for k, s in _layers(factor):
        frames = (frames - k) // s + 1 if frames >= k else 0
    return max(frames, 0)


def min_frames_for_subsampling(factor: int) -> int:
    """Fewest input frames that leave one output frame, walking the chain backwards."""
    n = 1
    for k, s in reversed(_layers(factor)):
        n = (n - 1) * s + k
    return n


def ctc_min_frames(tokens: Sequence[int]) -> int:
    """Frames CTC needs for a label sequence: one per token plus a blank between repeats."""
    repeats = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    return len(tokens) + repeats


def filter_utterances(dd: DataDir, num_frames: Dict[str, int], factor: Optional[int] = 4,
                      min_frames: Optional[int] = None, max_frames: Optional[int] = None,
                      token_ids: Optional[Dict[str, List[int]]] = None,
                      token_counts: Optional[Dict[str, int]] = None) -> Tuple[List[str], Dict[str, str]]:
    """Returns (kept utterance ids, {dropped id: reason}); the first failing check is the reason.
    The length floor is min_frames raised to what the subsampling `factor` needs (if given)."""
    if factor is None and (token_ids is not None or token_counts is not None):
        raise ValueError("the CTC length check needs the subsampling factor")
    floor = max(min_frames or 0, min_frames_for_subsampling(factor) if factor else 0)
    text = dd.tables.get("text")
    keep: List[str] = []
    dropped: Dict[str, str] = {}
    for utt in dd.utts:
        n = num_frames.get(utt)
        if n is None:
            dropped[utt] = "no_features"
        elif n < floor:
            dropped[utt] = "too_short"
        elif max_frames is not None and n > max_frames:
            dropped[utt] = "too_long"
        elif text is not None and not text.get(utt, "").strip():
            dropped[utt] = "empty_text"
        else:
            need = None
            if token_ids is not None and utt in token_ids:
                need = ctc_min_frames(token_ids[utt])
            elif token_counts is not None and utt in token_counts:
                need = token_counts[utt]
            if need is not None and need > frames_after_subsampling(n, factor or 1):
                dropped[utt] = "ctc_infeasible"
            else:
                keep.append(utt)
    return keep, dropped


def reason_counts(dropped: Dict[str, str]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for r in dropped.values():
        out[r] = out.get(r, 0) + 1
    return dict(sorted(out.items()))


def _token_ids(text: Dict[str, str], bpemodel: str) -> Dict[str, List[int]]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=bpemodel)
    keys = list(text)
    return dict(zip(keys, sp.encode([text[k] for k in keys], out_type=int)))


@typechecked
def filter_data_dir(in_dir: str, out_dir: str, subsampling: Optional[int] = None,
                    min_frames: Optional[int] = None, max_frames: Optional[int] = None,
                    feats_dir: Optional[str] = None, bpemodel: Optional[str] = None,
                    token_counts: Optional[str] = None, no_text: bool = False) -> Dict[str, int]:
    """Filters in_dir into out_dir; returns {reason: dropped count}."""
    if subsampling is None and (bpemodel or token_counts):
        raise ValueError("the CTC length check needs --subsampling")
    if subsampling is None and min_frames is None:
        subsampling = 4
    dd = DataDir.read(in_dir)
    if no_text:  # unlabeled data: a stray text file must not decide what is kept
        dd.tables.pop("text", None)
        dd.tables.pop("text.phn", None)
    if feats_dir:  # features written beside the data dir: bring them in so out_dir is complete
        for name in ("feats.scp", "utt2num_frames"):
            p = os.path.join(feats_dir, name)
            if os.path.isfile(p):
                dd.tables[name] = read_table(p)
    if not dd.has("utt2num_frames"):
        raise FormatError(os.path.join(feats_dir or in_dir, "utt2num_frames"), 0,
                          "missing: extract features first (it is written beside feats.scp)")
    frames: Dict[str, int] = {}
    for utt, v in dd.tables["utt2num_frames"].items():
        if not v.isdigit():
            raise FormatError(os.path.join(feats_dir or in_dir, "utt2num_frames"), 0, f"'{utt}': '{v}' is not a count")
        frames[utt] = int(v)
    ids = _token_ids(dd.tables.get("text", {}), bpemodel) if bpemodel else None
    counts = {k: int(v) for k, v in read_table(token_counts).items()} if token_counts else None

    keep, dropped = filter_utterances(dd, frames, subsampling, min_frames, max_frames, ids, counts)
    dd.subset(keep).write(out_dir)
    for name in FEATURE_INFO_FILES:
        src = os.path.join(feats_dir or in_dir, name)
        if os.path.isfile(src) and os.path.abspath(src) != os.path.abspath(os.path.join(out_dir, name)):
            shutil.copyfile(src, os.path.join(out_dir, name))
    with atomic_write(os.path.join(out_dir, "filtered.txt")) as f:
        for utt in sorted(dropped, key=lambda u: u.encode()):
            f.write(f"{utt} {dropped[utt]}\n")
    stats = reason_counts(dropped)
    floor = max(min_frames or 0, min_frames_for_subsampling(subsampling) if subsampling else 0)
    log.info("%s -> %s: kept %d of %d utterances (at least %d frames%s)", in_dir, out_dir,
             len(keep), len(dd.utt2spk), floor, f", at most {max_frames}" if max_frames else "")
    for reason, n in stats.items():
        log.info("dropped %d: %s", n, reason)
    return stats
