"""LASER self-supervised fine-tuning of a HuBERT / WavLM upstream (docs/laser.md), as a
method of the training core (bljust.train.loop).

Each step draws `batch_pairs` utterances `accum_grad` times, makes (x, x') pairs (speed +
pitch perturbation, random order), runs both through the same upstream + LaserHead in one
batch, adds LaserLoss / accum_grad to the gradients, clips and steps (AdamW, linear warm-up
then decay). The method's state holds everything the next update depends on besides what
the loop keeps: the trainable parameters (the frozen ones are rebuilt from the same initial
checkpoint, or the same seed), optimiser, scheduler, the data position (epoch, index into
that epoch's permutation) and the pair maker's and cropper's random streams, so a resumed
run is bit-for-bit the uninterrupted one. The output, upstream.pth, is written at the end
(bljust.train.upstream_io); with trainer.upstream_interval N, also upstream.<update>.pth
every N updates, for a curve of downstream results over fine-tuning.
"""
from __future__ import annotations

import logging
import os
import random
from typing import Any, Dict, List, Optional

import humanfriendly
import torch
from typeguard import typechecked

from bljust.data.batching import pad_list
from bljust.data.pairs import PairMaker
from bljust.data.wav_dataset import WavDataset
from bljust.losses.laser import LaserLoss
from bljust.nets.upstream import LaserEncoder
from bljust.train.checkpoint import as_tuples
from bljust.train.experiment_folder import open_upstream_run
from bljust.train.loop import LoopOptions, Method, TrainingLoop, setup_device
from bljust.train.schedulers import build_optimizer, build_scheduler
from bljust.train.upstream_io import load_upstream, save_upstream, save_upstream_due
from bljust.utils.plot import save_curves

log = logging.getLogger(__name__)

DIAG_CURVES = ("sdtw_div", "idm", "cos_near", "cos_far", "erank", "diag_dev_id", "diag_dev_pair")


def _log_diagnostics(step: int, diags: List[Dict[str, float]], events: Any, crit: LaserLoss, k: int,
                     z: torch.Tensor, zl: torch.Tensor, div: float, reg: float) -> None:
    """The loss's two terms and the collapse / alignment statistics of the last batch
    (bljust.losses.laser_diagnostics): logged, written as TensorBoard scalars, kept for the
    curves in diagnostics.png."""
    from bljust.losses.laser_diagnostics import collapsed, laser_diagnostics

    diag = dict(sdtw_div=div, idm=reg, **laser_diagnostics(z[:k], zl[:k], z[k:], zl[k:], gamma=crit.gamma))
    log.info("diagnostics at update %d: %s", step, ", ".join(f"{n} {v:.4g}" for n, v in diag.items()))
    if collapsed(diag):
        log.warning("the representation looks collapsed at update %d (far frames' cosine %.3f, effective rank "
                    "%.2f, variance %.2g): see docs/laser.md", step, diag["cos_far"], diag["erank"], diag["var"])
    events.scalars(step, diag, "diag/")
    diags.append(dict(step=step, **diag))




class LaserMethod(Method):
    """LASER: pairs of perturbed utterances, soft-DTW divergence + IDM on the LASER head's output."""

    name = "LASER"

    def __init__(self, conf: Dict[str, Any], dev: torch.device) -> None:
        self.conf, self.dev, self.tr = conf, dev, conf["trainer"]
        uc, seed = conf["upstream"], int(conf["seed"])
        torch.manual_seed(seed)  # random-weight upstreams and the head start the same in every run
        self.up = load_upstream(uc["ckpt"], uc["arch"], bool(uc["trust_checkpoint"]),
                                representation_layer=int(uc["representation_layer"]))
        self.model = LaserEncoder(self.up, int(conf["head_dim"]), train_last=int(uc["train_last"])).to(dev)
        self.params = self.model.trainable_parameters()
        self.names = [n for n, p in self.model.named_parameters() if p.requires_grad]
        log.info("upstream %s, %d layers; training %s parameters (%d tensors)", self.up.kind, self.up.num_layers,
                 humanfriendly.format_number(sum(p.numel() for p in self.params)), len(self.params))
        self.crit = LaserLoss(**conf["loss"])
        self.opt = build_optimizer(self.params, conf["optim"])
        self.total = int(self.tr["max_updates"])
        self.sched = build_scheduler(self.opt, conf["scheduler"], self.total)
        self.ds = WavDataset(conf["train_data_dir"])
        self.seed = seed
        self.pairs = PairMaker(conf["pairs"]["speeds"], float(conf["pairs"]["semitones"]), seed=seed)
        self.crop_rng = random.Random(seed + 1)
        self.max_len = int(float(self.tr["max_seconds"]) * self.ds.fs)
        self.data = {"epoch": 0, "pos": 0}
        self.diag: List[Dict[str, float]] = []
        # frozen stages never train: dropout only where parameters learn (the head has none)
        self.model.eval()
        for layer in self.up.model.encoder.transformer.layers:
            if any(p.requires_grad for p in layer.parameters()):
                layer.train()

    def options(self) -> LoopOptions:
        return LoopOptions(total_steps=self.total, max_steps=int(self.tr["max_steps"]),
                           log_interval=int(self.tr["log_interval"]), save_interval=int(self.tr["save_interval"]),
                           unit="update")

    def state_dict(self) -> Dict[str, Any]:
        return {"trainable": [p.detach().cpu() for p in self.params], "trainable_names": self.names,
                "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(), "data": dict(self.data),
                "pairs_rng": self.pairs.rng.getstate(), "crop_rng": self.crop_rng.getstate(), "diag": self.diag}

    def load_state_dict(self, st: Dict[str, Any]) -> None:
        if st["trainable_names"] != self.names:
            raise RuntimeError("the checkpoint's trainable parameters differ from this config's")
        with torch.no_grad():
            for p, v in zip(self.params, st["trainable"]):
                p.copy_(v)
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.data = dict(st["data"])
        self.pairs.rng.setstate(as_tuples(st["pairs_rng"]))
        self.crop_rng.setstate(as_tuples(st["crop_rng"]))
        self.diag = list(st["diag"])

    def _next_utts(self, k: int) -> List[int]:
        got: List[int] = []
        d = self.data
        while len(got) < k:
            perm = list(range(len(self.ds)))
            random.Random(self.seed * 100003 + d["epoch"]).shuffle(perm)
            take = perm[d["pos"]: d["pos"] + k - len(got)]
            got += take
            d["pos"] += len(take)
            if d["pos"] >= len(perm):
                d["epoch"], d["pos"] = d["epoch"] + 1, 0
        return got

    def _crop(self, w: torch.Tensor) -> torch.Tensor:
        if self.max_len > 0 and w.numel() > self.max_len:
            b = self.crop_rng.randrange(w.numel() - self.max_len + 1)
            return w[b: b + self.max_len]
        return w

    def train_step(self, loop: TrainingLoop) -> Optional[Dict[str, Any]]:
        accum, k = int(self.tr["accum_grad"]), int(self.tr["batch_pairs"])
        self.opt.zero_grad(set_to_none=True)
        upd_loss = 0.0
        for _ in range(accum):
            a_list, b_list = [], []
            for i in self._next_utts(k):
                a, b, _ = self.pairs(self._crop(self.ds.load(i)))
                a_list.append(a)
                b_list.append(b)
            wavs, lens = pad_list(a_list + b_list)
            z, zl = self.model(wavs.to(self.dev), lens.to(self.dev))
            zl = zl.clamp(min=1)
            div, reg = self.crit.terms(z[:k], zl[:k], z[k:], zl[k:])
            loss = (div + self.crit.alpha * reg).mean()
            (loss / accum).backward()
            upd_loss += float(loss.detach()) / accum
        gnorm = torch.nn.utils.clip_grad_norm_(self.params, float(self.tr["grad_clip"]))
        self.opt.step()
        self.sched.step()
        step = loop.step + 1
        if step % max(1, int(self.tr["log_interval"])) == 0 or step == self.total:
            _log_diagnostics(step, self.diag, loop.events, self.crit, k, z.detach(), zl,
                             float(div.detach().mean()), float(reg.detach().mean()))
        save_upstream_due(self.model.upstream, loop.out, step, int(self.tr["upstream_interval"]), self.total,
                          self._head_extra())
        return {"laser": upd_loss, "grad_norm": float(gnorm), "lr": self.sched.get_last_lr()[0]}

    def plot(self, loop: TrainingLoop) -> None:
        out = loop.out
        save_curves(os.path.join(out, "loss.png"), {"laser": loop.series("laser")}, "LASER fine-tuning",
                    "update", "loss")
        if self.diag:
            save_curves(os.path.join(out, "diagnostics.png"),
                        {name: [(row["step"], row[name]) for row in self.diag] for name in DIAG_CURVES},
                        "LASER diagnostics (collapse: cos_far -> 1, erank -> 1)", "update", "value")

    def _head_extra(self) -> Dict[str, Any]:
        return {"laser_head": {k: v.detach().cpu() for k, v in self.model.head.state_dict().items()}}

    def finish(self, loop: TrainingLoop, done: bool) -> None:
        if done:
            save_upstream(self.model.upstream, os.path.join(loop.out, "upstream.pth"), self._head_extra())
        log.info("%s at update %d/%d: %s", "finished" if done else "stopped (trainer.max_steps)", loop.step,
                 self.total, os.path.join(loop.out, "upstream.pth") if done else loop.checkpoint_path)


@typechecked
def train_laser(conf: Dict[str, Any]) -> Dict[str, Any]:
    """Runs (or resumes) LASER fine-tuning; returns a summary (steps, last loss, paths)."""
    out = open_upstream_run(conf, "train_data_dir", ("upstream", "head_dim", "loss", "pairs"), "ssft")
    loop = TrainingLoop(out, LaserMethod(conf, setup_device(conf)), int(conf["seed"]))
    done = loop.run()
    hist = loop.rows("laser")
    return {"step": loop.step, "loss": hist[-1][1] if hist else float("nan"), "done": done, "history": hist}
