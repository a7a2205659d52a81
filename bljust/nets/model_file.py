"""Reading trained models: the weights in a model file or full checkpoint (weights_only),
and a model built from the config.yaml that training writes beside it, ready for decoding.

Decoding and scoring use this without importing the training code.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Tuple

import torch
import yaml

from bljust.nets.asr_model import build_asr_model
from bljust.utils import serialization
from bljust.utils.serialization import CheckpointError


def model_state(path: str) -> Dict[str, torch.Tensor]:
    """The model state_dict in a model file or in a full checkpoint (loaded with weights_only=True)."""
    obj = serialization.load(path, what="model file")
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a model state_dict (expected a mapping of parameter names to tensors)")
    return obj


def load_model_for_inference(model_file: str, config_file: str | None = None, device: str = "cpu") -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """Builds the model from config.yaml (default: beside the model file) and loads its weights.

    Returns (model in eval mode on `device`, config dict). The global CMVN lives in the
    model, so inference needs no other file.
    """
    if config_file is None:
        config_file = os.path.join(os.path.dirname(os.path.abspath(model_file)), "config.yaml")
    if not os.path.isfile(model_file):
        raise FileNotFoundError(f"model file {model_file} not found")
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config {config_file} not found (it is written next to the model by training)")
    with open(config_file, encoding="utf-8") as f:
        try:
            config = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise CheckpointError(f"{config_file}: not valid YAML ({' '.join(str(e).split())[:160]})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_file}: not a training config (expected a mapping)")
    info = config.get("model_info") or {}
    if "input_dim" not in info or "vocab_size" not in info:
        raise ValueError(f"{config_file}: no model_info.input_dim / vocab_size (not written by bljust.bin.train?)")
    model = build_asr_model(config, int(info["input_dim"]), int(info["vocab_size"]))
    try:
        missing, unexpected = model.load_state_dict(model_state(model_file), strict=False)
    except RuntimeError as e:  # shapes differ
        raise CheckpointError(f"{model_file} does not match {config_file}: "
                              f"{' '.join(str(e).split())[:300]}") from None
    if missing or unexpected:
        raise CheckpointError(f"{model_file} does not match {config_file}: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}")
    return model.to(device).eval(), config
