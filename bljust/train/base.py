"""What every epoch/round-based trainer shares: the run's attributes, start-or-resume,
validation (CTC loss and greedy CER), keep-best links and pruning, averaging into model.pth.

The supervised Trainer and the BilevelTrainer both derive from TrainerBase and call its
__init__; each adds its own optimisers, loop, checkpoint contents and `_resume`. Nothing
here imports a trainer, so the dispatcher (run.py) can import both without a circle.
"""
from __future__ import annotations

import contextlib
import logging
import os
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from bljust.data.batching import make_batches
from bljust.data.dataset import ASRDataset, collate
from bljust.decode.ctc import greedy_search
from bljust.nets.asr_model import ASRModel
from bljust.train import distributed as D
from bljust.train.checkpoint import average_state_dicts, best_epochs, has_checkpoint, link, save_atomic
from bljust.utils.events import EventLog

logger = logging.getLogger(__name__)


class TooManyBadSteps(RuntimeError):
    """More non-finite losses or gradients than trainer.max_bad_steps allows."""


def autocast(device: torch.device, amp: str):
    """The autocast context for trainer.amp (none, bf16, fp16); a no-op off CUDA."""
    if amp == "none" or device.type != "cuda":
        return contextlib.nullcontext()
    if amp not in ("bf16", "fp16"):
        raise ValueError(f"trainer.amp must be none, bf16 or fp16, got '{amp}'")
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


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


def device_frontend(dataset: ASRDataset, device: torch.device) -> Optional[nn.Module]:
    """The fbank module that turns raw waveforms into features on the device, when the dataset sends them."""
    if not dataset.on_device:
        return None
    from bljust.nets.frontend import FbankFrontend

    logger.info("raw input: the loader sends waveforms, the fbank is computed on %s", device)
    return FbankFrontend(dataset.reader.fbank_opts).to(device)


class TrainerBase:
    """Run attributes and the epoch-end machinery; subclasses provide run(), save_checkpoint(),
    _resume() and plot()."""

    def __init__(self, config: Dict[str, Any], model: ASRModel, train_set: ASRDataset,
                 valid_set: Optional[ASRDataset], tokenizer: Any, dist: D.DistInfo, device: torch.device) -> None:
        self.conf, self.tc = config, config["trainer"]
        self.out = config["output_dir"]
        self.model, self.train_set, self.valid_set, self.tok = model, train_set, valid_set, tokenizer
        self.dist, self.device = dist, device
        self.seed = int(config["seed"])
        self.amp = str(self.tc.get("amp", "none"))
        self.frontend = device_frontend(train_set, device)
        self._events: Optional[EventLog] = None

    def features(self, b: Dict[str, Any], dataset: Optional[ASRDataset] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """A batch's features and their lengths on the device (fbank computed there for raw on-device input)."""
        x, lens = b["feats"].to(self.device, non_blocking=True), b["feat_lens"].to(self.device, non_blocking=True)
        if self.frontend is not None and (dataset or self.train_set).on_device:
            x, lens = self.frontend(x, lens)
        return x, lens

    @property
    def events(self) -> EventLog:
        """TensorBoard events under output_dir/tensorboard (set up by _start_or_resume, so that
        a resumed run hides what the killed one logged after its checkpoint)."""
        if self._events is None:
            raise RuntimeError("events before _start_or_resume")
        return self._events

    def record_round(self, row: Dict[str, Any]) -> None:
        """Appends an epoch's (or validation round's) row to the history and to the event file."""
        self.state["history"].append(row)
        self.events.scalars(row["step"], {k: v for k, v in row.items() if k not in ("epoch", "step")}, "epoch/")
        self.events.flush()

    def _resume(self) -> None:
        raise NotImplementedError

    def plot(self) -> None:
        raise NotImplementedError

    def _start_or_resume(self) -> None:
        """Continues from checkpoint.pth when there is one; otherwise seeds this rank's RNGs."""
        if has_checkpoint(self.out):
            self._resume()
        else:
            random.seed(self.seed + self.dist.rank)
            np.random.seed(self.seed + self.dist.rank)
            torch.manual_seed(self.seed + self.dist.rank)
        self._events = EventLog(self.out, self.state["step"], self.dist.is_master)

    @torch.no_grad()
    def validate(self) -> Dict[str, float]:
        m = self.model
        m.eval()
        batches = make_batches(self.valid_set.lengths, int(self.conf["batching"]["batch_bins"]),
                               int(self.conf["batching"].get("max_batch_size", 0)))
        loss_sum, n, errs, chars = 0.0, 0, 0, 0
        for keys in batches:
            b = collate([self.valid_set[k] for k in keys])
            with autocast(self.device, self.amp):
                enc, elens = m.encode(*self.features(b, self.valid_set))
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

    def save_round(self, epoch: int) -> None:
        """End of an epoch (or validation round): <epoch>epoch.pth, the checkpoint, best links,
        pruning, curves. Every rank calls it (the checkpoint gathers RNG states)."""
        if self.dist.is_master:
            save_atomic(self.model.state_dict(), os.path.join(self.out, f"{epoch}epoch.pth"))
        self.save_checkpoint()
        if self.dist.is_master:
            self._update_links_and_prune()
            self.plot()
        D.barrier(self.dist)

    def save_checkpoint(self) -> None:
        raise NotImplementedError

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
