"""Training configuration: defaults < YAML file < command-line `--dotted.key value` overrides.

The resolved dictionary is what gets saved as output_dir/config.yaml, so a run can
be replayed from that file alone.
"""
from __future__ import annotations

import copy
import re
from typing import Any, Dict, List, Sequence, Tuple

import yaml

DEFAULTS: Dict[str, Any] = {
    # paths and launch (normally given on the command line)
    "train_data_dir": None,
    "valid_data_dir": None,
    "token_dir": None,
    "cmvn": None,
    "output_dir": None,
    "unlab_data_dir": None,  # unlabeled features (used by the bilevel trainer)
    "ngpu": 0,
    "num_nodes": 1,  # > 1: started by srun/torchrun on every node (see bljust/train/distributed.py)
    "world_size": 1,
    "dist_backend": None,  # default: nccl on GPU, gloo on CPU
    "seed": 0,
    "num_threads": 0,  # CPU threads per process; 0: the CPU cores / local processes, < 0: torch's default
    # model
    "encoder": {"impl": "bljust", "d_model": 144, "num_heads": 4, "ffn_dim": 576, "num_layers": 4,
                "kernel_size": 15, "dropout": 0.1, "subsampling": 4, "conv_norm": "layer_norm"},
    "specaug": {"num_freq_masks": 2, "freq_mask_width": 27, "num_time_masks": 2,
                "time_mask_width": 40, "time_mask_ratio": 0.05, "time_warp": 0},
    "ctc": {"zero_infinity": True},
    # training method: supervised (this trainer) or bilevel (BL-JUST and its baselines,
    # bljust/train/bilevel_trainer.py, configured by the sections below)
    "method": "supervised",
    "label": None,  # the name tables give this run (default: its folder's name)
    "variant": None,  # a sweep point's overrides (asr.sh stage 9), shown after the label
    "unsup": {"name": "cpc"},  # the lower-level loss: cpc, bestrq or laser, with its options
    "bilevel": {
        "n1": 0, "n2": 0, "n3": 0,  # explore / joint / fine-tune steps
        "n1_epochs": None, "n2_epochs": None, "n3_epochs": None,  # ... or epochs (override steps)
        "budget_passes": None,  # ... or a budget of encoder passes split by budget_fractions
        "budget_fractions": [0.25, 0.5, 0.25],
        "k": 1, "gamma0": 0.1, "gamma_max": 1.0, "gamma_schedule": "linear", "normalize": True,
        "reuse_lower_grad": False, "penalty_ref": "running_min", "grad_clip": 5.0,
        "valid_interval": 0,  # steps between validations (0: one labeled epoch)
    },
    "optim_ll": {"name": "adamw", "lr": 0.001, "weight_decay": 1.0e-6},  # lower level (rate rho)
    "optim_ul": {"name": "adamw", "lr": 0.001, "weight_decay": 1.0e-6},  # upper level (rate alpha)
    "optim_ft": {"name": "adamw", "lr": 0.0005, "weight_decay": 1.0e-6},  # fine-tune (rate tau)
    "scheduler_ll": {"name": "constant"},
    "scheduler_ul": {"name": "constant"},
    "scheduler_ft": {"name": "constant"},
    "unlab_batching": {},  # batching of the unlabeled stream (default: as batching)
    # optimisation
    "optim": {"name": "adamw", "lr": 0.001, "weight_decay": 1.0e-6},
    "scheduler": {"name": "warmuplr", "warmup_steps": 1000},
    "batching": {"batch_bins": 20000, "max_batch_size": 256, "min_frames": 0, "max_frames": 0},
    "trainer": {
        "max_epoch": 10, "accum_grad": 1, "grad_clip": 5.0, "amp": "none",  # none | bf16 | fp16
        "log_interval": 50, "save_interval_steps": 0, "keep_nbest_models": 5, "nbest_average": 5,
        "max_bad_steps": 100, "num_workers": 0, "deterministic": True, "valid_cer": True,
        "max_steps": 0,  # > 0 stops early (tests, benchmarks)
    },
}

# Sections whose keys are passed straight to a constructor: new keys are allowed.
FREEFORM = {"encoder", "specaug", "ctc", "optim", "scheduler", "unsup", "optim_ll", "optim_ul", "optim_ft",
            "scheduler_ll", "scheduler_ul", "scheduler_ft", "unlab_batching"}


class ConfigError(ValueError):
    pass


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` as a string; a config means the number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def yaml_load(text) -> Any:
    return yaml.load(text, Loader=_Loader)


def deep_merge(base: Dict[str, Any], upd: Dict[str, Any], path: str = "", strict: bool = True) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in (upd or {}).items():
        key = f"{path}{k}"
        if k not in out:
            if strict and path.rstrip(".") not in FREEFORM and path.split(".")[0] not in FREEFORM:
                raise ConfigError(f"unknown config key '{key}'")
            out[k] = copy.deepcopy(v)
        elif isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = deep_merge(out[k], v, key + ".", strict)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_overrides(argv: Sequence[str]) -> List[Tuple[str, Any]]:
    """`--a.b 3 --c=x --flag true` -> [("a.b", 3), ("c", "x"), ("flag", True)]; values are YAML."""
    out: List[Tuple[str, Any]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or len(arg) <= 2:
            raise ConfigError(f"expected --key value, got '{arg}'")
        if "=" in arg:
            key, raw = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(argv):
                raise ConfigError(f"option '{arg}' has no value")
            key, raw = arg[2:], argv[i + 1]
            i += 2
        try:
            val = yaml_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            val = raw
        out.append((key.replace("-", "_") if "." not in key else key, val))
    return out


def set_dotted(conf: Dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    d = conf
    for j, p in enumerate(parts[:-1]):
        if p not in d or not isinstance(d[p], dict):
            if p in d or parts[0] not in FREEFORM:
                raise ConfigError(f"unknown config key '{key}' ('{'.'.join(parts[:j + 1])}' is not a section)")
            d[p] = {}
        d = d[p]
    if parts[-1] not in d and parts[0] not in FREEFORM:
        raise ConfigError(f"unknown config key '{key}'")
    d[parts[-1]] = value


def load_config(path: str | None, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    conf = copy.deepcopy(DEFAULTS)
    if path:
        with open(path, encoding="utf-8") as f:
            try:
                user = yaml_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(user, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        try:
            conf = deep_merge(conf, user)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    for key, val in parse_overrides(list(overrides)):
        set_dotted(conf, key, val)
    return conf


def save_config(conf: Dict[str, Any], path: str) -> None:
    from bljust.utils.fileio import atomic_write

    with atomic_write(path) as f:
        yaml.safe_dump(conf, f, sort_keys=False, default_flow_style=False)
