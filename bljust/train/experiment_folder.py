"""An experiment folder that already holds a run: resume it, refuse it, or start over.

A rerun of a training resumes the run in its output folder, but only if that run is the
same model trained on the same features and tokens: otherwise the rerun is refused
before anything in the folder changes (config.yaml, model.pth, checkpoints), and the
user gives another output folder or asks to start over (`--resume false`).
"""
from __future__ import annotations

import glob
import logging
import os
import re
from typing import Any, Dict, List, Sequence

from bljust.train.checkpoint import has_checkpoint
from bljust.train.config import ConfigError, defaults, save_config

logger = logging.getLogger(__name__)

# settings that make a different model: a run with other values is not the one in the folder
MODEL_KEYS = ("method", "encoder", "ctc", "unsup")


_ABSENT = object()


def self_description(config: Dict[str, Any]) -> Dict[str, Any]:
    """What a checkpoint carries about itself: model_info (token list, features, CMVN) and the
    settings that define the model, so that the file alone says what it is."""
    return {"model_info": config.get("model_info"),
            "model_config": {k: config.get(k) for k in MODEL_KEYS if k in config}}


def _diff(old: Any, new: Any, key: str, default: Any = _ABSENT) -> List[str]:
    """Settings that differ. A key the old run's config lacks (an option added to bljust since)
    counts as its default: only a non-default value of it is a difference."""
    if isinstance(old, dict) and isinstance(new, dict):
        dflt = default if isinstance(default, dict) else {}
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in _diff(old.get(k, dflt.get(k, _ABSENT)), new.get(k, _ABSENT), f"{key}.{k}",
                               dflt.get(k, _ABSENT))]
    if old is _ABSENT and new == default or old == new:
        return []
    show = lambda v: "(not set)" if v is _ABSENT else repr(v)  # noqa: E731
    return [f"{key}: {show(old)} -> {show(new)}"]


def changed_settings(old: Dict[str, Any], new: Dict[str, Any], keys: Sequence[str],
                     defaults: Dict[str, Any]) -> List[str]:
    """`section.key: old -> new` for every difference in the given top-level sections."""
    return [d for k in keys for d in _diff(old.get(k, defaults.get(k, _ABSENT)), new.get(k, _ABSENT), k,
                                           defaults.get(k, _ABSENT))]


def _refusal(out: str, diffs: List[str]) -> str:
    return (f"{out} holds a run with other model/feature settings ({'; '.join(diffs[:6])}"
            f"{'; ...' if len(diffs) > 6 else ''}); its config.yaml and models are left as they are. ")


def check_same_run(out: str, config: Dict[str, Any], keys: Sequence[str], kind: str) -> None:
    """For trainers without --resume false (SSFT, SUPERB, upstream pre-training; `kind` names the
    config schema): a folder holding a checkpoint of a run with other `keys` settings is refused
    before anything in it changes."""
    import yaml

    old_path = os.path.join(out, "config.yaml")
    if not (has_checkpoint(out) and os.path.isfile(old_path)):
        return
    with open(old_path, encoding="utf-8") as f:
        old = yaml.safe_load(f) or {}
    diffs = changed_settings(old, config, keys, defaults(kind))
    if diffs:
        raise ConfigError(_refusal(out, diffs) + "Pass another --output_dir, or remove that folder to start over")


def _model_info_diff(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """Differences in what the model was built from; entries an older run did not record are skipped."""
    out = []
    for k in ("input_dim", "vocab_size"):
        if k in old and old[k] != new.get(k):
            out.append(f"model_info.{k}: {old[k]!r} -> {new.get(k)!r}")
    o, n = old.get("token_list") or {}, new.get("token_list") or {}
    if o.get("sha256") and o.get("sha256") != n.get("sha256"):
        out.append(f"token list: {o.get('file')} (sha256 {o['sha256'][:12]}) -> {n.get('file')} "
                   f"(sha256 {str(n.get('sha256'))[:12]})")
    o, n = old.get("features") or {}, new.get("features") or {}
    for k in ("cmvn_type", "cmvn_sha256", "fs", "fbank"):
        if o.get(k) and o.get(k) != n.get(k):
            out.append(f"features.{k}: {str(o[k])[:12]} -> {str(n.get(k))[:12]}")
    return out


def check_resume(config: Dict[str, Any], resume: bool) -> bool:
    """True when output_dir holds an earlier run. With resume, that run must have the same model
    and feature settings: otherwise ConfigError, and nothing in the folder has been touched."""
    import yaml

    out = config["output_dir"]
    old_path = os.path.join(out, "config.yaml")
    earlier = has_checkpoint(out) or os.path.lexists(os.path.join(out, "model.pth"))
    if not earlier or not resume:
        return earlier
    if not os.path.isfile(old_path):
        raise ConfigError(f"{out} holds checkpoints but no config.yaml: cannot tell which settings they were "
                          "trained with; pass another --output_dir, or --resume false to start over there")
    with open(old_path, encoding="utf-8") as f:
        old = yaml.safe_load(f) or {}
    diffs = changed_settings(old, config, MODEL_KEYS, defaults("train"))
    diffs += _model_info_diff(old.get("model_info") or {}, config["model_info"])
    if diffs:
        raise ConfigError(_refusal(out, diffs) + "Pass a new --output_dir (asr.sh: another --tag), or --resume false "
                          "to start over there")
    changed = [k for k in ("seed", "specaug", "optim", "scheduler", "batching", "trainer", "bilevel")
               if old.get(k) != config.get(k)]
    if changed:
        logger.warning("resuming %s with changed settings (%s): the result will differ from an uninterrupted run",
                       out, ", ".join(changed))
    return True


def start_over(out: str) -> None:
    """Removes the checkpoints, epoch models, averages and links of an earlier run in `out`."""
    gone = []
    for p in sorted(glob.glob(os.path.join(out, "*.pth"))):
        name = os.path.basename(p)
        if re.fullmatch(r"(checkpoint(\.prev)?|\d+epoch|model|.*\.best|.*\.ave_\d+best)\.pth", name):
            os.unlink(p)
            gone.append(name)
    for name in ("train_summary.yaml",):
        if os.path.exists(os.path.join(out, name)):
            os.unlink(os.path.join(out, name))
            gone.append(name)
    logger.warning("--resume false: starting over in %s (removed %d files of the earlier run: %s)", out, len(gone),
                   ", ".join(gone[:8]) + (" ..." if len(gone) > 8 else ""))


def open_upstream_run(config: Dict[str, Any], data_key: str, same_keys: Sequence[str], kind: str) -> str:
    """The start of an upstream method's run (SSFT, SUPERB, upstream pre-training): its data and
    output folder are given, a folder of another run is refused (check_same_run), and the
    resolved config is saved as output_dir/config.yaml. Returns output_dir."""
    out = config["output_dir"]
    if not out or not config[data_key]:
        raise ValueError(f"{data_key} and output_dir are required")
    os.makedirs(out, exist_ok=True)
    check_same_run(out, config, same_keys, kind)
    save_config(config, os.path.join(out, "config.yaml"))
    return out
