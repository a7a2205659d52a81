"""Supervised CTC as a method of the training core (loop.py): bucketed batches in epochs,
gradient accumulation and clipping, AMP, DDP.

A step is one optimiser update over `accum_grad` batches; an epoch is ceil(batches /
accum_grad) steps, so the step counter alone says where in which epoch a run is, and a
resumed run (even after SIGKILL) reads the same batches as an uninterrupted one and ends
with the same parameters (on CPU; GPU kernels may not be bit-reproducible).
"""
from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Dict, Iterator, List, Optional

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from bljust.data.batching import BucketBatchSampler, make_batches
from bljust.data.dataset import ASRDataset, collate
from bljust.nets.asr_model import ASRModel
from bljust.train import distributed as D
from bljust.train.base import ASRMethod, autocast
from bljust.train.loop import LoopOptions, TrainingLoop
from bljust.train.schedulers import build_optimizer, build_scheduler

logger = logging.getLogger(__name__)


class SupervisedMethod(ASRMethod):
    """Supervised CTC: one labeled stream in epochs; a round is an epoch."""

    name = "supervised"

    def __init__(self, config: Dict[str, Any], model: ASRModel, train_set: ASRDataset,
                 valid_set: Optional[ASRDataset], tokenizer: Any, dist: D.DistInfo, device: torch.device) -> None:
        super().__init__(config, model, train_set, valid_set, tokenizer, dist, device)
        bconf = config["batching"]
        self.accum = max(1, int(self.tc["accum_grad"]))
        self.batches = make_batches(train_set.lengths, int(bconf["batch_bins"]), int(bconf.get("max_batch_size", 0)),
                                    min_batch_size=dist.world_size)
        self.sampler = BucketBatchSampler(self.batches, self.seed, dist.rank, dist.world_size)
        self.steps_per_epoch = math.ceil(len(self.batches) / self.accum)
        self.total_steps = self.steps_per_epoch * int(self.tc["max_epoch"])
        self.opt = build_optimizer(model.parameters(), config["optim"])
        self.sched = build_scheduler(self.opt, config["scheduler"], self.total_steps)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" and device.type == "cuda" else None
        self.clip = float(self.tc.get("grad_clip", 0) or 0)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.sums = {"loss": 0.0, "utts": 0}  # the current epoch's training loss
        self.ddp: Optional[DDP] = None
        self._it: Optional[Iterator[Dict[str, Any]]] = None
        self._it_at = (0, -1)  # (epoch, batch position) the open loader continues from
        self._gbatches: List[List[str]] = []
        logger.info("%d train batches per epoch, %d optimiser steps in total", len(self.batches), self.total_steps)

    def options(self) -> LoopOptions:
        return self.loop_options(self.total_steps)

    def state_dict(self) -> Dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict() if self.scaler else None,
                "sums": dict(self.sums)}

    def load_state_dict(self, st: Dict[str, Any]) -> None:
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        if self.scaler is not None and st.get("scaler"):
            self.scaler.load_state_dict(st["scaler"])
        self.sums = dict(st["sums"])

    def _where(self, step: int) -> tuple:
        """(epoch, first batch, batches) of the step after `step` steps."""
        epoch, k = step // self.steps_per_epoch + 1, step % self.steps_per_epoch
        first = k * self.accum
        return epoch, first, min(self.accum, len(self.batches) - first)

    def log_tag(self, step: int) -> str:
        epoch, first, n = self._where(step - 1)
        return f"epoch {epoch} batch {first + n}/{len(self.batches)}"

    def _next(self, epoch: int, pos: int) -> Dict[str, Any]:
        """Batch `pos` of `epoch` (a loader per epoch, reopened at the position after a resume)."""
        if self._it is None or self._it_at != (epoch, pos):
            self.sampler.set_epoch(epoch, pos)
            self._gbatches = self.sampler.global_batches()
            self._it = iter(torch.utils.data.DataLoader(
                self.train_set, batch_sampler=self.sampler, collate_fn=collate,
                num_workers=int(self.tc.get("num_workers", 0)), pin_memory=self.device.type == "cuda",
                generator=torch.Generator().manual_seed(self.seed + epoch)))
            self._base = pos
            (self.ddp or self.model).train()
        b = next(self._it)
        b["global_size"] = len(self._gbatches[pos - self._base])
        self._it_at = (epoch, pos + 1)
        return b

    def train_step(self, loop: TrainingLoop) -> Optional[Dict[str, Any]]:
        epoch, first, n = self._where(loop.step)
        if self.ddp is None and self.dist.enabled:  # after a resume has loaded the weights
            self.ddp = DDP(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        net, ws, params = self.ddp or self.model, self.dist.world_size, self.params
        bad, frames, loss_sum, utts = False, 0, 0.0, 0
        for j in range(n):
            b = self._next(epoch, first + j)
            feats, flens = self.features(b)
            ys, ylens = b["ys"].to(self.device), b["y_lens"].to(self.device)
            sync = contextlib.nullcontext() if (self.ddp is None or j == n - 1) else self.ddp.no_sync()
            with sync:
                with autocast(self.device, self.amp):
                    loss, stats = net(feats, flens, ys, ylens)
                if D.any_true(not bool(torch.isfinite(loss).item()), self.dist, self.device):
                    bad = True
                    logger.warning("epoch %d batch %d: non-finite loss (%s), the step is skipped", epoch,
                                   first + j + 1, stats["loss"])
                    if self.ddp is not None:  # the reducer still expects a backward on every rank
                        (sum(p.reshape(-1)[0] for p in params) * 0.0).backward()
                else:
                    # Normalise by the global batch so that N ranks sum to the 1-process gradient.
                    scaled = loss * (feats.size(0) * ws / b["global_size"]) / n
                    (self.scaler.scale(scaled) if self.scaler else scaled).backward()
                    loss_sum += stats["loss"] * feats.size(0)
                    utts += feats.size(0)
            frames += int(flens.sum()) * ws
        self.sums["loss"] += loss_sum
        self.sums["utts"] += utts
        if not self._optimizer_step(params, bad):
            return None
        return {"loss": loss_sum / max(1, utts), "lr": self.opt.param_groups[0]["lr"], "frames": frames}

    def _optimizer_step(self, params: List[torch.nn.Parameter], skip: bool) -> bool:
        """Clips and steps; False when the update was skipped (non-finite loss or gradient)."""
        if not skip:
            if self.scaler is not None:
                self.scaler.unscale_(self.opt)
            gnorm = torch.nn.utils.clip_grad_norm_(params, self.clip if self.clip > 0 else float("inf"))
            if self.scaler is not None:  # fp16 overflow: the scaler skips the step and lowers its scale
                self.scaler.step(self.opt)
                self.scaler.update()
            elif torch.isfinite(gnorm):
                self.opt.step()
            else:
                logger.warning("non-finite gradient norm, update skipped")
                skip = True
        self.opt.zero_grad(set_to_none=True)
        if not skip:
            self.sched.step()
        return not skip

    def round_due(self, step: int) -> bool:
        return step % self.steps_per_epoch == 0

    def end_round(self, loop: TrainingLoop) -> Dict[str, Any]:
        row: Dict[str, Any] = {"train_loss": self.sums["loss"] / max(1, self.sums["utts"])}
        if self.dist.is_master and self.valid_set is not None:
            row.update(self.validate())
        self.sums = {"loss": 0.0, "utts": 0}
        logger.info("epoch %d done: %s", loop.state["round"], ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
        return row

    def plot(self, loop: TrainingLoop) -> None:
        self.plot_loss_and_cer(loop, {"train": loop.series("loss"), "train (epoch)": loop.series("train_loss", "history")})
