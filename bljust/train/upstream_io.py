"""Reading and writing HuBERT / WavLM upstreams for the methods that train one (LASER
fine-tuning, upstream pre-training) or train on one (SUPERB downstreams).

upstream.pth is {"model": torchaudio state dict, "upstream_config": the builder arguments},
which Upstream.from_checkpoint (and bljust's loaders) read.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import torch
from typeguard import typechecked

from bljust.nets import upstream_convert as conv
from bljust.nets.upstream import Upstream
from bljust.train.checkpoint import save_atomic
from bljust.train.config import yaml_load


def resolve_arch(arch: Union[None, str, Dict[str, Any]]) -> Union[None, str, Dict[str, Any]]:
    """An arch name, a dict, or a YAML file holding the dict."""
    if isinstance(arch, str) and arch.endswith((".yaml", ".yml")):
        with open(arch, encoding="utf-8") as f:
            return yaml_load(f)
    return arch


@typechecked
def load_upstream(ckpt: Optional[str], arch: Union[None, str, Dict[str, Any]] = None, trust: bool = False,
                  **kw: Any) -> Upstream:
    """Upstream from a checkpoint (any supported layout), or random weights from `arch`."""
    arch = resolve_arch(arch)
    if not ckpt:
        if arch is None:
            raise ValueError("upstream: give a checkpoint (upstream.ckpt) or an architecture (upstream.arch)")
        return Upstream(arch, **kw)
    if not os.path.exists(ckpt):
        raise FileNotFoundError(f"upstream checkpoint {ckpt} not found")
    if arch is None:
        obj = conv.read_checkpoint(ckpt, trust=trust)
        arch = obj.get("upstream_config") if isinstance(obj.get("upstream_config"), dict) else None
    return Upstream.from_checkpoint(ckpt, arch=arch, trust=trust, **kw)


def save_upstream(up: Upstream, path: str, extra: Optional[Dict[str, Any]] = None) -> None:
    obj: Dict[str, Any] = {"model": {k: v.detach().cpu() for k, v in up.model.state_dict().items()},
                           "upstream_config": _plain(up.config)}
    if extra:
        obj.update(extra)
    save_atomic(obj, path)


def save_upstream_due(up: Upstream, out: str, step: int, interval: int, total: int,
                      extra: Optional[Dict[str, Any]] = None) -> Optional[str]:
    """After update `step`: writes out/upstream.<step>.pth when `interval` > 0 divides it and
    it is not the last update (upstream.pth is that one); returns the path written or None."""
    if interval <= 0 or step % interval or step >= total:
        return None
    path = os.path.join(out, f"upstream.{step}.pth")
    save_upstream(up, path, extra)
    return path


def _plain(x: Any) -> Any:
    """Tuples to lists so that the config loads with weights_only=True and dumps as YAML."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
