"""Dropping utterances a CTC model cannot train on: too short for the encoder's
subsampling, too long for memory, no transcript, or more tokens than frames."""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence, Tuple

from bljust.data.datadir import DataDir

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
