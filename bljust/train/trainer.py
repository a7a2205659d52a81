"""Supervised CTC training loop: bucketed batches, warm-up schedules, AMP, DDP, exact resume.

A run is a function of its config: running it again after a kill (even SIGKILL)
continues from output_dir/checkpoint.pth and ends with the same parameters as a
run that was never interrupted (on CPU; GPU kernels may not be bit-reproducible).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from typing import Any, Dict, List, Optional

import humanfriendly
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from bljust.data.batching import BucketBatchSampler, make_batches
from bljust.data.dataset import ASRDataset, collate
from bljust.nets.asr_model import ASRModel
from bljust.train import distributed as D
from bljust.train import experiment_folder as folder
from bljust.train.base import TooManyBadSteps, TrainerBase, autocast
from bljust.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from bljust.train.schedulers import build_optimizer, build_scheduler
from bljust.utils.plot import save_curves

logger = logging.getLogger(__name__)


class Trainer(TrainerBase):
    """Supervised CTC: one labeled stream in epochs, gradient accumulation, clipping, AMP."""

    def __init__(self, config: Dict[str, Any], model: ASRModel, train_set: ASRDataset,
                 valid_set: Optional[ASRDataset], tokenizer: Any, dist: D.DistInfo, device: torch.device) -> None:
        super().__init__(config, model, train_set, valid_set, tokenizer, dist, device)
        bconf = config["batching"]
        self.accum = max(1, int(self.tc["accum_grad"]))
        self.batches = make_batches(train_set.lengths, int(bconf["batch_bins"]), int(bconf.get("max_batch_size", 0)),
                                    min_batch_size=dist.world_size)
        self.sampler = BucketBatchSampler(self.batches, self.seed, dist.rank, dist.world_size)
        steps_per_epoch = math.ceil(len(self.batches) / self.accum)
        self.total_steps = steps_per_epoch * int(self.tc["max_epoch"])
        self.opt = build_optimizer(model.parameters(), config["optim"])
        self.sched = build_scheduler(self.opt, config["scheduler"], self.total_steps)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" and device.type == "cuda" else None
        self.state: Dict[str, Any] = {"epoch": 1, "batch_pos": 0, "step": 0, "bad_losses": 0, "history": [],
                                      "curve": [], "epoch_loss_sum": 0.0, "epoch_utts": 0}
        self._start_or_resume()
        self.ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if dist.enabled else None
        logger.info("%d train batches per epoch, %d optimiser steps in total", len(self.batches), self.total_steps)

    # ---------------------------------------------------------------- checkpoints
    def _resume(self) -> None:
        ck, path = load_checkpoint(self.out, required=("model", "optimizer", "scheduler", "state", "rng"))
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        if self.scaler is not None and ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        self.state = ck["state"]
        rngs = ck["rng"]
        if len(rngs) == self.dist.world_size:
            set_rng_state(rngs[self.dist.rank])
        else:
            logger.warning("checkpoint written by %d ranks, now %d: RNG streams restart", len(rngs), self.dist.world_size)
            torch.manual_seed(self.seed + self.dist.rank + 1000 * self.state["step"])
        logger.info("resumed at step %d (epoch %d, batch %d) from %s", self.state["step"], self.state["epoch"],
                    self.state["batch_pos"], path)

    def save_checkpoint(self) -> None:
        """Every rank must call this (RNG states are gathered); rank 0 writes."""
        self.events.flush()  # first: the event file then holds at least what the checkpoint does
        rngs = D.gather_objects(rng_state(), self.dist)
        if self.dist.is_master:
            save_checkpoint({"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                             "scheduler": self.sched.state_dict(),
                             "scaler": self.scaler.state_dict() if self.scaler else None,
                             "state": self.state, "rng": rngs, **folder.self_description(self.conf)}, self.out)

    # ---------------------------------------------------------------- training
    def run(self) -> None:
        t0 = time.time()
        done_batches = 0
        max_epoch, max_steps = int(self.tc["max_epoch"]), int(self.tc.get("max_steps", 0))
        while self.state["epoch"] <= max_epoch:
            stopped, n = self._train_epoch(t0, done_batches)
            done_batches += n
            if stopped:
                self.save_checkpoint()
                logger.info("stopped at trainer.max_steps=%d", max_steps)
                return
            self._end_epoch()
        if self.dist.is_master:
            self.finalize()
        D.barrier(self.dist)

    def _train_epoch(self, t0: float, done_before: int) -> tuple:
        st, epoch = self.state, self.state["epoch"]
        n_batches = len(self.batches)
        self.sampler.set_epoch(epoch, st["batch_pos"])
        gbatches = self.sampler.global_batches()
        loader = torch.utils.data.DataLoader(
            self.train_set, batch_sampler=self.sampler, collate_fn=collate,
            num_workers=int(self.tc.get("num_workers", 0)), pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(self.seed + epoch))
        net = self.ddp or self.model
        net.train()
        ws, clip = self.dist.world_size, float(self.tc.get("grad_clip", 0) or 0)
        max_steps = int(self.tc.get("max_steps", 0))
        log_int = max(1, int(self.tc.get("log_interval", 50)))
        save_int = int(self.tc.get("save_interval_steps", 0))
        group_bad, frames, tlog, start = False, 0, time.time(), st["batch_pos"]
        log_loss, log_utts = 0.0, 0
        params = [p for p in self.model.parameters() if p.requires_grad]
        for i, b in enumerate(loader):
            pos = start + i + 1
            gsize = len(gbatches[i])
            group_start = ((pos - 1) // self.accum) * self.accum
            group_len = min(self.accum, n_batches - group_start)
            last = pos == group_start + group_len
            feats, flens = self.features(b)
            ys, ylens = b["ys"].to(self.device), b["y_lens"].to(self.device)
            sync = contextlib.nullcontext() if (self.ddp is None or last) else self.ddp.no_sync()
            with sync:
                with autocast(self.device, self.amp):
                    loss, stats = net(feats, flens, ys, ylens)
                bad = D.any_true(not bool(torch.isfinite(loss).item()), self.dist, self.device)
                if bad:
                    group_bad = True
                    st["bad_losses"] += 1
                    logger.warning("epoch %d batch %d: non-finite loss (%s), batch skipped [%d so far]",
                                   epoch, pos, stats["loss"], st["bad_losses"])
                    if self.ddp is not None:  # the reducer still expects a backward on every rank
                        (sum(p.reshape(-1)[0] for p in params) * 0.0).backward()
                else:
                    # Normalise by the global batch so that N ranks sum to the 1-process gradient.
                    scaled = loss * (feats.size(0) * ws / gsize) / group_len
                    (self.scaler.scale(scaled) if self.scaler else scaled).backward()
                    st["epoch_loss_sum"] += stats["loss"] * feats.size(0)
                    st["epoch_utts"] += feats.size(0)
                    log_loss += stats["loss"] * feats.size(0)
                    log_utts += feats.size(0)
            frames += int(flens.sum()) * ws
            if st["bad_losses"] > int(self.tc.get("max_bad_steps", 100)):
                raise TooManyBadSteps(f"{st['bad_losses']} batches had non-finite losses (trainer.max_bad_steps="
                                      f"{self.tc.get('max_bad_steps')}); check the data and the learning rate")
            if not last:
                continue
            stepped = self._optimizer_step(params, clip, group_bad)
            group_bad = False
            st["batch_pos"] = pos
            step = st["step"]
            if stepped and step % log_int == 0 and log_utts:
                el = time.time() - t0
                done = done_before + i + 1
                left = (int(self.tc["max_epoch"]) - epoch) * n_batches + (n_batches - pos)
                if max_steps:
                    left = min(left, (max_steps - step) * self.accum)
                dt = time.time() - tlog
                logger.info("epoch %d step %d batch %d/%d: loss %.3f lr %.3g | %.2f steps/s %s frames/s | ETA %s",
                            epoch, step, pos, n_batches, log_loss / log_utts, self.opt.param_groups[0]["lr"],
                            log_int / max(dt, 1e-9), humanfriendly.format_number(frames / max(dt, 1e-9), 0),
                            humanfriendly.format_timespan(el / max(done, 1) * left))
                st["curve"].append((epoch - 1 + pos / n_batches, log_loss / log_utts))
                self.events.scalars(step, {"loss": log_loss / log_utts, "lr": self.opt.param_groups[0]["lr"]}, "train/")
                frames, tlog, log_loss, log_utts = 0, time.time(), 0.0, 0
            if stepped and save_int and step % save_int == 0:
                self.save_checkpoint()
            if max_steps and step >= max_steps:
                return True, i + 1
        return False, len(gbatches)

    def _optimizer_step(self, params: List[torch.nn.Parameter], clip: float, skip: bool) -> bool:
        """Clips, steps and counts; False when the update was skipped (non-finite)."""
        st = self.state
        if not skip:
            if self.scaler is not None:
                self.scaler.unscale_(self.opt)
            gnorm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
            if self.scaler is not None:  # fp16 overflow: the scaler skips the step and lowers its scale
                self.scaler.step(self.opt)
                self.scaler.update()
            elif torch.isfinite(gnorm):
                self.opt.step()
            else:
                st["bad_losses"] += 1
                logger.warning("step %d: non-finite gradient norm, update skipped [%d so far]", st["step"], st["bad_losses"])
                skip = True
        self.opt.zero_grad(set_to_none=True)
        if not skip:
            self.sched.step()
            st["step"] += 1
        return not skip

    # ---------------------------------------------------------------- epochs, validation
    def _end_epoch(self) -> None:
        st = self.state
        epoch = st["epoch"]
        row: Dict[str, Any] = {"epoch": epoch, "step": st["step"],
                               "train_loss": st["epoch_loss_sum"] / max(1, st["epoch_utts"])}
        if self.dist.is_master and self.valid_set is not None:
            row.update(self.validate())
        self.record_round(row)
        st.update(epoch=epoch + 1, batch_pos=0, epoch_loss_sum=0.0, epoch_utts=0)
        logger.info("epoch %d done: %s", epoch, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        self.save_round(epoch)

    def plot(self) -> None:
        hist = self.state["history"]
        img = os.path.join(self.out, "images")
        os.makedirs(img, exist_ok=True)
        loss = {"train": [(float(x), float(y)) for x, y in self.state["curve"]]}
        loss["train (epoch)"] = [(float(h["epoch"]), float(h["train_loss"])) for h in hist]
        if any("valid_loss" in h for h in hist):
            loss["valid"] = [(float(h["epoch"]), float(h["valid_loss"])) for h in hist if "valid_loss" in h]
        try:
            save_curves(os.path.join(img, "loss.png"), loss, "CTC loss", "epoch", "loss per utterance")
            cer = [(float(h["epoch"]), float(h["valid_cer"])) for h in hist if "valid_cer" in h]
            if cer:
                save_curves(os.path.join(img, "cer.png"), {"valid": cer}, "validation CER (greedy)", "epoch", "CER %")
        except Exception as e:  # a plotting bug must never stop training
            logger.warning("could not write curves: %s", e)
