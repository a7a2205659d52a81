"""Optimisers and warm-up learning-rate schedules, built from the config.

Every schedule is a multiplier of the configured peak `optim.lr` as a function of
the optimiser step, wrapped in LambdaLR so its state is just the step counter.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Iterable

import torch

from bljust.train import schema
from bljust.train.config import resolve_section


def build_optimizer(params: Iterable[torch.nn.Parameter], conf: Dict[str, Any]) -> torch.optim.Optimizer:
    """conf: an optimiser section (bljust.train.schema.OptimConfig); unset keys keep torch's defaults."""
    conf = resolve_section(schema.OptimConfig, conf, "optim")
    name = conf.pop("name")
    params = list(params)
    if name in ("adam", "adamw") and params and all(p.is_cuda for p in params):
        # one fused kernel for the whole update on the GPU (torch's default there is the
        # slower multi-tensor "foreach" path)
        conf.setdefault("fused", True)
    if name == "adam":
        return torch.optim.Adam(params, **conf)
    if name == "adamw":
        return torch.optim.AdamW(params, **conf)
    if name == "sgd":
        return torch.optim.SGD(params, **conf)
    raise ValueError(f"unknown optimizer '{name}' (adam, adamw, sgd)")


def lr_lambda(conf: Dict[str, Any], total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak lr at optimiser step `s` (s counts from 0)."""
    conf = resolve_section(schema.SchedulerConfig, conf, "scheduler")
    restarts = [float(x) for x in conf.get("restarts") or []]
    if restarts:
        if any(not 0 < x < 1 for x in restarts) or restarts != sorted(set(restarts)):
            raise ValueError(f"scheduler.restarts must be increasing fractions in (0, 1), got {restarts}")
        # warm restarts: the schedule runs again from its warm-up in each cycle, over that cycle's steps
        bounds = sorted({0, *(int(round(x * total_steps)) for x in restarts), total_steps})
        cycles = [(a, lr_lambda({**conf, "restarts": []}, b - a)) for a, b in zip(bounds, bounds[1:]) if b > a]

        def restarted(s: int) -> float:
            start, fn = next((c for c in reversed(cycles) if s >= c[0]), cycles[0])
            return fn(s - start)
        return restarted
    name = conf["name"]
    warmup = max(1, int(conf.get("warmup_steps", 1)))
    if name in ("warmuplr", "noam"):
        # Inverse-sqrt decay after a linear warm-up, peaking at 1.0 at `warmup`
        # (noam's d_model**-0.5 factor is folded into the configured lr).
        return lambda s: min((s + 1) / warmup, (warmup / (s + 1)) ** 0.5)
    if name in ("linear", "warmup_linear"):
        final = float(conf["final_lr_ratio"])
        return lambda s: (s + 1) / warmup if s + 1 < warmup else max(
            final, 1.0 - (1.0 - final) * (s + 1 - warmup) / max(1, total_steps - warmup))
    if name in ("cosine", "warmup_cosine"):
        final = float(conf["final_lr_ratio"])
        return lambda s: (s + 1) / warmup if s + 1 < warmup else final + (1 - final) * 0.5 * (
            1 + math.cos(math.pi * min(1.0, (s + 1 - warmup) / max(1, total_steps - warmup))))
    if name in ("constant", "none"):
        return lambda s: 1.0
    raise ValueError(f"unknown scheduler '{name}' (warmuplr, noam, linear, cosine, constant)")


def build_scheduler(opt: torch.optim.Optimizer, conf: Dict[str, Any], total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(conf, total_steps))
