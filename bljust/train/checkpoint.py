"""Checkpoints: full training state for resume, model-only files, averaging, loading for inference.

checkpoint.pth holds everything a resumed run needs to continue as if never stopped:
model, optimiser, scheduler, grad scaler, trainer counters (epoch, position within
the epoch, step), history and the RNG states of python, numpy and torch on every rank.
"""
from __future__ import annotations

import logging
import os
import random
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import torch

from bljust.utils.fileio import atomic_write

logger = logging.getLogger(__name__)


def save_atomic(obj: Any, path: str) -> None:
    with atomic_write(path, "wb", encoding=None) as f:
        torch.save(obj, f)


def rng_state() -> Dict[str, Any]:
    st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state()
    return st


def set_rng_state(st: Dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state(st["cuda"])


def model_state(path: str) -> Dict[str, torch.Tensor]:
    """The model state_dict in a model file or in a full checkpoint."""
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a model state_dict")
    return obj


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


def load_model_for_inference(model_file: str, config_file: str | None = None, device: str = "cpu") -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """Builds the model from config.yaml (default: beside the model file) and loads its weights.

    Returns (model in eval mode on `device`, config dict). The global CMVN lives in the
    model, so inference needs no other file.
    """
    import yaml

    from bljust.nets.asr_model import build_asr_model

    if config_file is None:
        config_file = os.path.join(os.path.dirname(os.path.abspath(model_file)), "config.yaml")
    if not os.path.isfile(model_file):
        raise FileNotFoundError(f"model file {model_file} not found")
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config {config_file} not found (it is written next to the model by training)")
    with open(config_file, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    info = config.get("model_info") or {}
    if "input_dim" not in info or "vocab_size" not in info:
        raise ValueError(f"{config_file}: no model_info.input_dim / vocab_size (not written by bljust.bin.train?)")
    model = build_asr_model(config, int(info["input_dim"]), int(info["vocab_size"]))
    missing, unexpected = model.load_state_dict(model_state(model_file), strict=False)
    if missing or unexpected:
        raise ValueError(f"{model_file} does not match {config_file}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.to(device).eval(), config
