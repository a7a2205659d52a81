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
import random
import time
from typing import Any, Dict, List, Optional, Sequence

import humanfriendly
import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from bljust.data.batching import BucketBatchSampler, make_batches
from bljust.data.dataset import ASRDataset, collate
from bljust.decode.ctc import greedy_search
from bljust.nets.asr_model import ASRModel, build_asr_model
from bljust.nets.subsampling import min_input_frames
from bljust.train import distributed as D
from bljust.train import experiment_folder as folder
from bljust.train.checkpoint import (average_state_dicts, best_epochs, has_checkpoint, link, load_checkpoint,
                                     rng_state, save_atomic, save_checkpoint, set_rng_state)
from bljust.train.config import ConfigError, save_config
from bljust.train.schedulers import build_optimizer, build_scheduler
from bljust.utils import model_info

logger = logging.getLogger(__name__)


class TooManyBadSteps(RuntimeError):
    pass


def greedy_ctc(log_probs: torch.Tensor, lens: torch.Tensor, blank: int = 0) -> List[List[int]]:
    """Best path token ids per utterance (the decoder's greedy search, without scores)."""
    return [hyps[0].tokens for hyps in greedy_search(log_probs, lens, blank)]


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance between two sequences (characters or token ids)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


def _autocast(device: torch.device, amp: str):
    if amp == "none" or device.type != "cuda":
        return contextlib.nullcontext()
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"trainer.amp must be none, bf16 or fp16, got '{amp}'")
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


class Trainer:
    def __init__(self, config: Dict[str, Any], model: ASRModel, train_set: ASRDataset,
                 valid_set: Optional[ASRDataset], tokenizer: Any, dist: D.DistInfo, device: torch.device) -> None:
        self.conf, self.tc = config, config["trainer"]
        self.out = config["output_dir"]
        self.model, self.train_set, self.valid_set, self.tok = model, train_set, valid_set, tokenizer
        self.dist, self.device = dist, device
        self.seed = int(config["seed"])
        bconf = config["batching"]
        self.accum = max(1, int(self.tc["accum_grad"]))
        self.batches = make_batches(train_set.lengths, int(bconf["batch_bins"]), int(bconf.get("max_batch_size", 0)),
                                    min_batch_size=dist.world_size)
        self.sampler = BucketBatchSampler(self.batches, self.seed, dist.rank, dist.world_size)
        steps_per_epoch = math.ceil(len(self.batches) / self.accum)
        self.total_steps = steps_per_epoch * int(self.tc["max_epoch"])
        self.opt = build_optimizer(model.parameters(), config["optim"])
        self.sched = build_scheduler(self.opt, config["scheduler"], self.total_steps)
        self.amp = str(self.tc.get("amp", "none"))
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" and device.type == "cuda" else None
        self.state: Dict[str, Any] = {"epoch": 1, "batch_pos": 0, "step": 0, "bad_losses": 0, "history": [],
                                      "curve": [], "epoch_loss_sum": 0.0, "epoch_utts": 0}
        self._start_or_resume()
        self.ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if dist.enabled else None
        logger.info("%d train batches per epoch, %d optimiser steps in total", len(self.batches), self.total_steps)

    # ---------------------------------------------------------------- checkpoints
    def _start_or_resume(self) -> None:
        """Continues from checkpoint.pth when there is one; otherwise seeds this rank's RNGs."""
        self.ckpt_path = os.path.join(self.out, "checkpoint.pth")
        if has_checkpoint(self.out):
            self._resume()
        else:
            random.seed(self.seed + self.dist.rank)
            np.random.seed(self.seed + self.dist.rank)
            torch.manual_seed(self.seed + self.dist.rank)

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
            feats, flens = b["feats"].to(self.device), b["feat_lens"].to(self.device)
            ys, ylens = b["ys"].to(self.device), b["y_lens"].to(self.device)
            sync = contextlib.nullcontext() if (self.ddp is None or last) else self.ddp.no_sync()
            with sync:
                with _autocast(self.device, self.amp):
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
        st["history"].append(row)
        st.update(epoch=epoch + 1, batch_pos=0, epoch_loss_sum=0.0, epoch_utts=0)
        logger.info("epoch %d done: %s", epoch, ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        if self.dist.is_master:
            save_atomic(self.model.state_dict(), os.path.join(self.out, f"{epoch}epoch.pth"))
        self.save_checkpoint()
        if self.dist.is_master:
            self._update_links_and_prune()
            self.plot()
        D.barrier(self.dist)

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        m = self.model
        m.eval()
        batches = make_batches(self.valid_set.lengths, int(self.conf["batching"]["batch_bins"]),
                               int(self.conf["batching"].get("max_batch_size", 0)))
        loss_sum, n, errs, chars = 0.0, 0, 0, 0
        for keys in batches:
            b = collate([self.valid_set[k] for k in keys])
            with _autocast(self.device, self.amp):
                enc, elens = m.encode(b["feats"].to(self.device), b["feat_lens"].to(self.device))
            loss = m.ctc_loss(enc, elens, b["ys"].to(self.device), b["y_lens"].to(self.device))
            loss_sum += float(loss)
            n += len(keys)
            if self.tc.get("valid_cer", True):
                for k, ids in zip(keys, greedy_ctc(m.ctc_log_probs(enc), elens, m.blank_id)):
                    ref = self.valid_set.texts[k]
                    errs += edit_distance(ref, self.tok.decode(ids))
                    chars += len(ref)
        m.train()
        out = {"valid_loss": loss_sum / max(1, n)}
        if chars:
            out["valid_cer"] = 100.0 * errs / chars
        return out

    def _update_links_and_prune(self) -> None:
        hist = self.state["history"]
        keep = {hist[-1]["epoch"]}
        k = max(int(self.tc.get("keep_nbest_models", 5)), int(self.tc.get("nbest_average", 5)))
        for metric in ("valid_loss", "valid_cer"):
            best = best_epochs(hist, metric, k)
            keep.update(best)
            if best:
                link(f"{best[0]}epoch.pth", os.path.join(self.out, f"{metric.replace('_', '.')}.best.pth"))
        if not any(h.get("valid_loss") is not None for h in hist):
            keep.update(h["epoch"] for h in hist[-k:])
        for h in hist:
            p = os.path.join(self.out, f"{h['epoch']}epoch.pth")
            if h["epoch"] not in keep and os.path.exists(p):
                os.unlink(p)

    def finalize(self) -> None:
        """Averages the best K epochs by validation CER (loss without CER) into model.pth."""
        hist = self.state["history"]
        if not hist:
            return
        self._update_links_and_prune()
        k = int(self.tc.get("nbest_average", 5))
        metric = "valid_cer" if any(h.get("valid_cer") is not None for h in hist) else "valid_loss"
        epochs = best_epochs(hist, metric, k) or [h["epoch"] for h in hist[-k:]]
        paths = [os.path.join(self.out, f"{e}epoch.pth") for e in epochs]
        paths = [p for p in paths if os.path.exists(p)]
        name = f"{metric.replace('_', '.')}.ave_{k}best.pth"
        save_atomic(average_state_dicts(paths), os.path.join(self.out, name))
        link(name, os.path.join(self.out, "model.pth"))
        logger.info("averaged epochs %s (best by %s) into %s -> model.pth", epochs, metric, name)
        self.plot()

    def plot(self) -> None:
        try:
            from bljust.utils.plot import save_curves
        except ImportError:
            logger.warning("bljust.utils.plot not available: no loss/CER images")
            return
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


def train(config: Dict[str, Any], dist: D.DistInfo | None = None, tokenizer: Any = None, resume: bool = True) -> None:
    """Runs (or resumes) training as configured; writes everything under config['output_dir'].

    resume=False starts over in an output folder that holds an earlier run (its checkpoints
    and models are removed); with resume=True a folder whose run had other model or
    feature settings is refused before anything in it is touched.
    """
    dist = dist or D.DistInfo()
    use_cuda = int(config.get("ngpu", 0)) > 0
    check_device(config)
    if config["trainer"].get("deterministic", True):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    nthreads = int(config.get("num_threads", 0))
    if nthreads == 0 and not use_cuda:
        # path.sh sets OMP_NUM_THREADS=1 for the JOB=1:N stages; training is one job per core set
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size if dist.world_size > 1 else 1))
        nthreads = max(1, (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) // local)
    if nthreads > 0:
        torch.set_num_threads(nthreads)
    dist.backend = dist.backend or config.get("dist_backend")
    D.init(dist, use_cuda)
    device = torch.device(f"cuda:{dist.local_rank}" if use_cuda else "cpu")
    try:
        _train(config, dist, tokenizer, device, resume)
    finally:
        D.cleanup(dist)


def check_device(config: Dict[str, Any]) -> None:
    ngpu = int(config.get("ngpu", 0))
    if ngpu > 0 and not torch.cuda.is_available():
        raise ConfigError(f"--ngpu {ngpu}, but torch sees no CUDA device on this machine: use --ngpu 0 to train "
                          "on CPU")
    if ngpu > 0 and torch.cuda.device_count() < ngpu:
        raise ConfigError(f"--ngpu {ngpu}, but only {torch.cuda.device_count()} CUDA device(s) are visible")


def _log_data_setup(config: Dict[str, Any], tokenizer: Any) -> None:
    """One line each: the feature setup of the training dump, and what the tokenizer turns into <unk>."""
    from bljust.features.extract import FEATS_CONF, read_feats_conf
    from bljust.text.coverage import report_coverage

    fc = read_feats_conf(config["train_data_dir"])
    if fc:
        logger.info("features: %s, %s dims at %s Hz, %s CMVN (%s)", fc.get("feature"), fc.get("feat_dim"),
                    fc.get("fs"), fc.get("cmvn_type"), os.path.join(config["train_data_dir"], FEATS_CONF))
    texts = [(f"{k.replace('_data_dir', '')} set {config[k]}", os.path.join(config[k], "text"))
             for k in ("train_data_dir", "valid_data_dir") if config.get(k)]
    if getattr(tokenizer, "sp", None) is not None:
        report_coverage(tokenizer.sp, [(n, t) for n, t in texts if os.path.isfile(t)])


def _train(config: Dict[str, Any], dist: D.DistInfo, tokenizer: Any, device: torch.device, resume: bool = True) -> None:
    for key in ("train_data_dir", "token_dir", "output_dir"):
        if not config.get(key) and not (key == "token_dir" and tokenizer is not None):
            raise ConfigError(f"--{key} is required")
    if config.get("method") == "bilevel" and not config.get("unlab_data_dir"):
        raise ConfigError("method bilevel needs --unlab_data_dir (unlabeled features)")
    if tokenizer is None:
        from bljust.text.tokenizer import Tokenizer

        tokenizer = Tokenizer.from_dir(config["token_dir"])
    bc = config["batching"]
    # too short for the subsampling front end: no output frame at all
    shortest = max(int(bc.get("min_frames", 0)), min_input_frames(int((config.get("encoder") or {}).get("subsampling", 4))))
    train_set = ASRDataset(config["train_data_dir"], tokenizer, shortest, int(bc.get("max_frames", 0)))
    valid_set = ASRDataset(config["valid_data_dir"], tokenizer, shortest) if config.get("valid_data_dir") else None
    if dist.is_master:
        _log_data_setup(config, tokenizer)
    mean = istd = None
    if config.get("cmvn"):
        from bljust.features.cmvn import read_global_cmvn

        mean, istd = read_global_cmvn(config["cmvn"])
    else:
        logger.warning("no --cmvn given: features go into the model unnormalised")
    config["model_info"] = model_info.describe(train_set.feat_dim, int(tokenizer.vocab_size), config.get("token_dir"),
                                               config.get("cmvn"), config["train_data_dir"], config)
    method = config.get("method", "supervised")
    if method not in ("supervised", "bilevel"):
        raise ConfigError(f"unknown method '{method}' (supervised, bilevel)")
    if method == "bilevel" and not config.get("unlab_data_dir"):
        raise ConfigError("method: bilevel needs --unlab_data_dir (the unlabeled features, "
                          "e.g. dump/fbank/train_unlab)")
    earlier = folder.check_resume(config, resume)  # before anything in output_dir changes
    os.makedirs(config["output_dir"], exist_ok=True)
    if dist.is_master:
        if earlier and not resume:
            folder.start_over(config["output_dir"])
        save_config(config, os.path.join(config["output_dir"], "config.yaml"))
    D.barrier(dist)
    torch.manual_seed(int(config["seed"]))  # the same initial weights on every rank
    model = build_asr_model(config, train_set.feat_dim, int(tokenizer.vocab_size), mean, istd).to(device)
    nparam = sum(p.numel() for p in model.parameters())
    logger.info("model: %s parameters, %d train / %d valid utterances", humanfriendly.format_number(nparam),
                len(train_set), len(valid_set) if valid_set else 0)
    if method == "supervised":
        Trainer(config, model, train_set, valid_set, tokenizer, dist, device).run()
    elif method == "bilevel":
        from bljust.train.bilevel_trainer import BilevelTrainer

        unlab_set = ASRDataset(config["unlab_data_dir"], None, shortest, int(bc.get("max_frames", 0)), labeled=False)
        logger.info("%d unlabeled utterances from %s", len(unlab_set), config["unlab_data_dir"])
        BilevelTrainer(config, model, train_set, unlab_set, valid_set, tokenizer, dist, device).run()
