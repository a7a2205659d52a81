"""The training core: one loop that every training method of bljust runs in (docs/training.md).

A method (supervised CTC, BL-JUST, LASER fine-tuning, a SUPERB downstream, upstream
pre-training, or a new one) is a `Method`: it builds its model, optimisers and data, and
  - makes one optimiser step per `train_step` call, returning the scalars to log (or None
    when it skipped the update: non-finite loss or gradient),
  - hands over and takes back everything a resumed run needs (`state_dict`/`load_state_dict`:
    parameters, optimisers, schedulers, data position, its own random streams),
and may validate (`round_due`/`end_round`), give a model per round for keep-best and
averaging (`snapshot`), draw curves (`plot`) and write its outputs (`finish`).

TrainingLoop owns the rest, the same way for every method: seeding, resume from
checkpoint.pth (or checkpoint.prev.pth), the step counter and the early stop at
trainer.max_steps, counting skipped steps against trainer.max_bad_steps, log lines with
rate and ETA, TensorBoard events, checkpoints (atomic, the last two kept, one layout),
validation rounds, keep-best-K links, pruning and averaging into model.pth, wall time.

The checkpoint layout, for every method:
  loop:   step, round, bad_steps, wall times, the logged rows ("log") and rounds ("history"),
          the partial sums of the current log interval
  method: what the method's state_dict returned
  rng:    python/numpy/torch(/cuda) RNG states, one per rank
  ...:    the method's self-description (describe()), e.g. model_info
"""
from __future__ import annotations

import abc
import contextlib
import logging
import math
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import humanfriendly
import numpy as np
import torch

from bljust.train import distributed as D
from bljust.train.checkpoint import (average_state_dicts, best_epochs, has_checkpoint, link, load_checkpoint,
                                     rng_state, save_atomic, save_checkpoint, set_rng_state)
from bljust.utils.events import EventLog

logger = logging.getLogger(__name__)


class TooManyBadSteps(RuntimeError):
    """More skipped (non-finite) steps than trainer.max_bad_steps allows."""


def autocast(device: torch.device, amp: str):
    """The autocast context for trainer.amp (none, bf16, fp16); a no-op off CUDA."""
    if amp == "none" or device.type != "cuda":
        return contextlib.nullcontext()
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"trainer.amp must be none, bf16 or fp16, got '{amp}'")
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def setup_device(conf: Dict[str, Any], dist: Optional[D.DistInfo] = None) -> torch.device:
    """Threads and device for a run: `num_threads` (0 on CPU: the cores this process may use,
    shared among the ranks of this node) and `ngpu` (0: CPU; otherwise this rank's GPU)."""
    dist = dist or D.DistInfo()
    use_cuda = int(conf.get("ngpu") or 0) > 0
    if use_cuda and not torch.cuda.is_available():
        from bljust.train.config import ConfigError

        raise ConfigError(f"--ngpu {conf.get('ngpu')}, but torch sees no CUDA device on this machine: use --ngpu 0 "
                          "to train on CPU")
    n = int(conf.get("num_threads") or 0)
    if n == 0 and not use_cuda:
        # path.sh sets OMP_NUM_THREADS=1 for the JOB=1:N stages; training is one job per core set
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size if dist.world_size > 1 else 1))
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        n = max(1, cores // local)
    if n > 0:
        torch.set_num_threads(n)
    return torch.device(f"cuda:{dist.local_rank}" if use_cuda else "cpu")


@dataclass
class LoopOptions:
    """How the loop runs a method; each method fills it from its config's trainer section."""
    total_steps: int                  # the schedule's length
    max_steps: int = 0                # stop early after this many steps (schedule unchanged); 0: run it all
    log_interval: int = 50            # steps between log lines / TensorBoard points
    save_interval: int = 0            # steps between checkpoints besides the rounds'; 0: rounds only
    max_bad_steps: int = 100          # skipped steps before giving up
    keep_nbest: int = 0               # keep the best K round models (0: the method gives no snapshots)
    nbest_average: int = 0            # average the best K of them into model.pth at the end (0: none)
    unit: str = "step"                # what a step is called in the log ("update" for upstream training)


class Method(abc.ABC):
    """What a training method provides. The four abstract hooks are required (a method without
    one cannot be built); the rest have defaults that do nothing. No __init__: a method builds
    itself as it likes."""

    name = "training"

    @abc.abstractmethod
    def state_dict(self) -> Dict[str, Any]:
        """Everything the next step depends on besides the global RNGs (weights_only-loadable)."""

    @abc.abstractmethod
    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Takes back what state_dict gave."""

    @abc.abstractmethod
    def options(self) -> LoopOptions:
        """How the loop runs this method (schedule length, intervals, keep-best)."""

    @abc.abstractmethod
    def train_step(self, loop: "TrainingLoop") -> Optional[Dict[str, Any]]:
        """One optimiser step; its scalars (numbers are averaged over the log interval, strings
        shown as they are), or None when the update was skipped."""

    def round_due(self, step: int) -> bool:
        """After `step` steps: end of an epoch or validation round? (A method that validates
        usually also ends a round at the last step.)"""
        return False

    def end_round(self, loop: "TrainingLoop") -> Dict[str, Any]:
        """Validation: the round's figures (valid_loss, valid_cer, ... lower is better)."""
        return {}

    def snapshot(self) -> Optional[Dict[str, torch.Tensor]]:
        """The model to keep for this round (keep-best, averaging); None: nothing kept."""
        return None

    def rounds_to_average(self, history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        return history

    def log_tag(self, step: int) -> str:
        """Shown after the step number in log lines (an epoch, a phase)."""
        return ""

    def describe(self) -> Dict[str, Any]:
        """Extra checkpoint entries that say what the run is (model_info)."""
        return {}

    def plot(self, loop: "TrainingLoop") -> None:
        pass

    def finish(self, loop: "TrainingLoop", done: bool) -> None:
        """After the last step (done) or at the early stop (not done)."""


class TrainingLoop:
    """Runs a Method from step 0 or from its checkpoint to the end of its schedule."""

    def __init__(self, output_dir: str, method: Method, seed: int, dist: Optional[D.DistInfo] = None) -> None:
        self.out, self.method, self.seed = output_dir, method, int(seed)
        self.dist = dist or D.DistInfo()
        self.opts = method.options()
        self.state: Dict[str, Any] = {"step": 0, "round": 1, "bad_steps": 0, "wall": 0.0, "train_wall": 0.0,
                                      "log": [], "history": [], "acc": {}, "saved_at": -1}
        self.checkpoint_path = os.path.join(output_dir, "checkpoint.pth")
        self._events: Optional[EventLog] = None
        self._t_mark = time.time()

    # ------------------------------------------------------------ start, resume, checkpoints
    def start(self) -> None:
        """Continues from the newest good checkpoint; otherwise seeds this rank's RNGs."""
        if has_checkpoint(self.out):
            ck, self.checkpoint_path = load_checkpoint(self.out, required=("loop", "method", "rng"))
            self.method.load_state_dict(ck["method"])
            self.state = ck["loop"]
            rngs = ck["rng"]
            if len(rngs) != self.dist.world_size:
                logger.warning("checkpoint written by %d ranks, now %d: the RNG streams restart", len(rngs),
                               self.dist.world_size)
                self._seed(1000 * self.state["step"] + 1)
            else:
                set_rng_state(rngs[self.dist.rank])
            logger.info("resumed at %s %d from %s", self.opts.unit, self.state["step"], self.checkpoint_path)
        else:
            self._seed(0)
        self._events = EventLog(self.out, self.state["step"], self.dist.is_master)
        self._t_mark = time.time()

    def _seed(self, offset: int) -> None:
        s = self.seed + self.dist.rank + offset
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)

    @property
    def events(self) -> EventLog:
        if self._events is None:
            raise RuntimeError("events before start()")
        return self._events

    @property
    def step(self) -> int:
        return int(self.state["step"])

    def save_checkpoint(self) -> None:
        """Every rank calls it (the RNG states are gathered); rank 0 writes."""
        self.events.flush()  # first: the event file then holds at least what the checkpoint does
        now = time.time()
        self.state["wall"] += now - self._t_mark
        self._t_mark = now
        self.state["saved_at"] = self.state["step"]
        rngs = D.gather_objects(rng_state(), self.dist)
        if self.dist.is_master:
            self.checkpoint_path = save_checkpoint(
                {"loop": self.state, "method": self.method.state_dict(), "rng": rngs, **self.method.describe()},
                self.out)

    # ------------------------------------------------------------ the loop
    def run(self) -> bool:
        """Trains to the end of the schedule (True) or to trainer.max_steps (False)."""
        self.start()
        o, st = self.opts, self.state
        stop = min(o.total_steps, o.max_steps) if o.max_steps > 0 else o.total_steps
        t0, s0 = time.time(), st["step"]
        while st["step"] < stop:
            t = time.time()
            stats = self.method.train_step(self)
            st["train_wall"] += time.time() - t  # the steps alone, over all runs
            st["step"] += 1
            if stats is None:
                st["bad_steps"] += 1
                logger.warning("%s %d skipped [%d so far; trainer.max_bad_steps %d]", o.unit, st["step"],
                               st["bad_steps"], o.max_bad_steps)
                if st["bad_steps"] > o.max_bad_steps:
                    raise TooManyBadSteps(f"{st['bad_steps']} steps were skipped for non-finite losses or gradients "
                                          f"(trainer.max_bad_steps={o.max_bad_steps}); check the data and the "
                                          "learning rate")
            else:
                self._accumulate(stats)
            if st["step"] % max(1, o.log_interval) == 0 or st["step"] == stop:
                self._log_line(t0, s0, stop)
            if self.method.round_due(st["step"]):
                self._round()
            elif o.save_interval and st["step"] % o.save_interval == 0 and st["step"] < stop:
                self.save_checkpoint()
        done = st["step"] >= o.total_steps
        if st["saved_at"] != st["step"]:
            self.save_checkpoint()
        if not done:
            logger.info("stopped at trainer.max_steps=%d (%s %d of %d); rerun without it to continue from %s",
                        o.max_steps, o.unit, st["step"], o.total_steps, self.checkpoint_path)
        elif o.nbest_average > 0 and self.dist.is_master:
            self._average()
        if self.dist.is_master:
            self.method.finish(self, done)
            self._plot()
        self.events.flush()
        D.barrier(self.dist)
        return done

    def _accumulate(self, stats: Dict[str, Any]) -> None:
        acc = self.state["acc"]
        for k, v in stats.items():
            if isinstance(v, str):
                acc[k] = v
            elif v is not None and math.isfinite(float(v)):
                s, n = acc.get(k, (0.0, 0))
                acc[k] = (s + float(v), n + 1)

    def _log_line(self, t0: float, s0: int, stop: int) -> None:
        st = self.state
        acc, st["acc"] = st["acc"], {}
        row: Dict[str, Any] = {"step": st["step"]}
        for k, v in acc.items():
            row[k] = v if isinstance(v, str) else v[0] / max(1, v[1])
        frames = row.pop("frames", None)
        st["log"].append(row)
        self.events.scalars(st["step"], {k: v for k, v in row.items() if k != "step"}, "train/")
        el = time.time() - t0
        rate = (st["step"] - s0) / max(el, 1e-9)
        speed = f"{rate:.2f} {self.opts.unit}s/s"
        if frames is not None:
            speed += f", {humanfriendly.format_number(frames * rate, 0)} frames/s"
        eta = humanfriendly.format_timespan((stop - st["step"]) / rate) if rate > 0 else "?"
        shown = " ".join(f"{k} {v}" if isinstance(v, str) else f"{k} {v:.4g}" for k, v in row.items() if k != "step")
        tag = self.method.log_tag(st["step"])
        logger.info("%s %s %d/%d%s: %s | %s, elapsed %s, ETA %s", self.method.name, self.opts.unit, st["step"],
                    self.opts.total_steps, f" {tag}" if tag else "", shown, speed,
                    humanfriendly.format_timespan(el), eta)

    def _round(self) -> None:
        """End of an epoch or validation round: validate, keep the round's model, checkpoint."""
        st = self.state
        r = st["round"]
        row: Dict[str, Any] = {"epoch": r, "step": st["step"], **self.method.end_round(self)}
        st["history"].append(row)
        st["round"] = r + 1
        self.events.scalars(st["step"], {k: v for k, v in row.items() if k not in ("epoch", "step")}, "round/")
        snap = self.method.snapshot() if self.opts.keep_nbest > 0 else None
        if snap is not None and self.dist.is_master:
            save_atomic(snap, os.path.join(self.out, f"{r}epoch.pth"))
        self.save_checkpoint()
        if self.dist.is_master:
            if snap is not None:
                self._links_and_prune()
            self._plot()
        D.barrier(self.dist)

    # ------------------------------------------------------------ keep-best, averaging
    def _metric(self, history: List[Dict[str, Any]]) -> Optional[str]:
        for m in ("valid_cer", "valid_loss"):
            if any(h.get(m) is not None for h in history):
                return m
        return None

    def _links_and_prune(self) -> None:
        hist = self.state["history"]
        keep = {hist[-1]["epoch"]}
        k = max(self.opts.keep_nbest, self.opts.nbest_average)
        for metric in ("valid_loss", "valid_cer"):
            best = best_epochs(hist, metric, k)
            keep.update(best)
            if best:
                link(f"{best[0]}epoch.pth", os.path.join(self.out, f"{metric.replace('_', '.')}.best.pth"))
        if self._metric(hist) is None:
            keep.update(h["epoch"] for h in hist[-k:])
        for h in hist:
            p = os.path.join(self.out, f"{h['epoch']}epoch.pth")
            if h["epoch"] not in keep and os.path.exists(p):
                os.unlink(p)

    def _average(self) -> None:
        """The best K rounds by validation CER (loss without CER; the last K without either)
        averaged into model.pth."""
        hist = self.method.rounds_to_average(self.state["history"])
        if not hist:
            return
        self._links_and_prune()
        k = self.opts.nbest_average
        metric = self._metric(hist)
        epochs = (best_epochs(hist, metric, k) if metric else []) or [h["epoch"] for h in hist[-k:]]
        paths = [p for p in (os.path.join(self.out, f"{e}epoch.pth") for e in epochs) if os.path.exists(p)]
        if not paths:
            return
        name = f"{(metric or 'last').replace('_', '.')}.ave_{k}best.pth"
        save_atomic(average_state_dicts(paths), os.path.join(self.out, name))
        link(name, os.path.join(self.out, "model.pth"))
        logger.info("averaged rounds %s (best by %s) into %s -> model.pth", epochs, metric or "recency", name)

    def _plot(self) -> None:
        try:
            self.method.plot(self)
        except Exception as e:  # a plotting bug must never stop training
            logger.warning("could not write curves: %s", e)

    # ------------------------------------------------------------ for the methods' plots
    def series(self, key: str, source: str = "log") -> List[Tuple[float, float]]:
        """(step, value) of a logged scalar ("log") or a round figure ("history")."""
        return [(float(r["step"]), float(r[key])) for r in self.state[source]
                if isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key]))]

    def rows(self, key: str, *more: str) -> List[List[Any]]:
        """[step, key, *more] of every logged row that has `key` (what the upstream methods return)."""
        return [[r["step"], r[key], *(r[m] for m in more)] for r in self.state["log"] if key in r]
