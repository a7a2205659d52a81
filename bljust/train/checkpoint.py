"""Checkpoints: full training state for resume, model-only files, averaging (reading a model
for inference: bljust.nets.model_file).

checkpoint.pth holds everything a resumed run needs to continue as if never stopped:
model, optimiser, scheduler, grad scaler, trainer counters (epoch, position within
the epoch, step), history and the RNG states of python, numpy and torch on every rank.
Everything in it is a tensor, a plain container, a number or a string, so it loads with
weights_only=True; the previous checkpoint is kept as checkpoint.prev.pth (each written
atomically), and a resume falls back to it when checkpoint.pth is damaged.
"""
from __future__ import annotations

import logging
import os
import random
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch

from bljust.nets.model_file import model_state
from bljust.utils import serialization
from bljust.utils.serialization import CheckpointError, CorruptFileError

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pth"
PREVIOUS = "checkpoint.prev.pth"


def save_atomic(obj: Any, path: str) -> None:
    """Writes a model or state file atomically; it must hold only weights_only-loadable types."""
    serialization.save(obj, path)


def save_checkpoint(obj: Dict[str, Any], out_dir: str) -> str:
    """Writes out_dir/checkpoint.pth, keeping the one it replaces as checkpoint.prev.pth."""
    path = os.path.join(out_dir, CHECKPOINT)
    serialization.save(obj, path, keep_previous=os.path.join(out_dir, PREVIOUS))
    return path


def has_checkpoint(out_dir: str) -> bool:
    return any(os.path.exists(os.path.join(out_dir, n)) for n in (CHECKPOINT, PREVIOUS))


def load_checkpoint(out_dir: str, required: Sequence[str] = ()) -> Tuple[Dict[str, Any], str]:
    """(checkpoint, its path) of the newest good checkpoint in out_dir.

    A damaged checkpoint.pth (truncated, empty, random, or missing one of the `required`
    entries) is skipped with a warning for checkpoint.prev.pth; a file that would need
    unsafe unpickling is an error, never skipped.
    """
    paths = [os.path.join(out_dir, n) for n in (CHECKPOINT, PREVIOUS)]
    bad = []
    for p in paths:
        if not os.path.exists(p):
            continue
        try:
            ck = serialization.load(p, what="training checkpoint")
            if not isinstance(ck, dict) or any(k not in ck for k in required):
                missing = [k for k in required if not isinstance(ck, dict) or k not in ck]
                raise CorruptFileError(f"{p}: not a training checkpoint of this trainer (no {', '.join(missing)})")
        except CorruptFileError as e:
            bad.append(str(e))
            continue
        if bad:
            logger.warning("%s; resuming from the previous checkpoint %s instead", bad[0], p)
        return ck, p
    if bad:
        raise CorruptFileError("; ".join(bad) + ": no good checkpoint to resume from (remove them, or pass "
                               "--resume false to start over)")
    raise FileNotFoundError(f"no {CHECKPOINT} in {out_dir}")


def rng_state() -> Dict[str, Any]:
    """RNG states as plain lists and tensors (numpy's state array becomes a list of ints)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    st = {"python": random.getstate(), "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
          "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state()
    return st


def set_rng_state(st: Dict[str, Any]) -> None:
    random.setstate(as_tuples(st["python"]))
    kind, keys, pos, has_gauss, cached = st["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state(st["cuda"])


def as_tuples(x: Any) -> Any:
    """random.setstate wants the nested tuples getstate gave (a list after a round trip through YAML/JSON)."""
    return tuple(as_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def average_state_dicts(paths: Sequence[str]) -> Dict[str, torch.Tensor]:
    """Element-wise mean of the models in `paths` (integer buffers: floor of the mean)."""
    if not paths:
        raise ValueError("no checkpoints to average")
    avg: Dict[str, torch.Tensor] = {}
    for i, p in enumerate(paths):
        sd = model_state(p)
        if i == 0:
            avg = {k: v.detach().clone().double() if v.is_floating_point() else v.detach().clone().long()
                   for k, v in sd.items()}
            ref = sd
            continue
        if sd.keys() != avg.keys():
            raise ValueError(f"{p}: parameters differ from {paths[0]}")
        for k, v in sd.items():
            avg[k] += v.double() if v.is_floating_point() else v.long()
    n = len(paths)
    return {k: (v / n).to(ref[k].dtype) if ref[k].is_floating_point() else torch.div(v, n, rounding_mode="floor").to(ref[k].dtype)
            for k, v in avg.items()}


def best_epochs(history: List[Dict[str, Any]], metric: str, k: int) -> List[int]:
    """Epochs with the lowest `metric` (ties: the later epoch), at most k."""
    rows = [h for h in history if h.get(metric) is not None and np.isfinite(h[metric])]
    rows.sort(key=lambda h: (h[metric], -h["epoch"]))
    return [h["epoch"] for h in rows[:k]]


def link(target_name: str, link_path: str) -> None:
    """Relative symlink (replaced atomically); copies where symlinks are unsupported."""
    tmp = link_path + ".tmp_link"
    try:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target_name, tmp)
        os.replace(tmp, link_path)
    except OSError:
        import shutil

        shutil.copyfile(os.path.join(os.path.dirname(link_path), target_name), tmp)
        os.replace(tmp, link_path)
