"""Small HuBERT-style pre-training of an upstream, for recipes without a released model.

Masked prediction as in HuBERT, with BEST-RQ targets instead of k-means clusters:
the utterance's fbank (10 ms, per-utterance mean/variance normalised) is stacked by
2 to the upstream's 20 ms frame rate, projected by a frozen random matrix and mapped
to the nearest entry of a frozen random codebook (bljust.losses.bestrq). Spans of
the CNN features are replaced by a learned mask embedding before the transformer,
and a linear classifier on the last layer predicts the targets of masked frames.
The output upstream.pth has the same layout as bljust.bin.ssft's, so every consumer
(ssft, train_superb) reads it with Upstream.from_checkpoint. It is a method of the training
core (bljust.train.loop), which owns the loop, resume, logging and checkpoints.
"""
from __future__ import annotations

import logging
import os
import random
from typing import Any, Dict, List, Optional

import humanfriendly
import torch
import torch.nn.functional as F
from torch import nn
from typeguard import typechecked

from bljust.data.batching import BucketCursor, pad_list
from bljust.data.wav_dataset import WavDataset
from bljust.features.fbank import Fbank, FbankOptions
from bljust.losses.bestrq import BestRQLoss
from bljust.losses.masking import span_mask, valid_mask
from bljust.train.checkpoint import as_tuples
from bljust.train.experiment_folder import open_upstream_run
from bljust.train.loop import LoopOptions, Method, TrainingLoop, setup_device
from bljust.train.schedulers import build_optimizer, build_scheduler
from bljust.train.upstream_io import load_upstream, save_upstream, save_upstream_due
from bljust.utils.plot import save_curves

log = logging.getLogger(__name__)

class MaskedPredictor(nn.Module):
    """Upstream + mask embedding + BEST-RQ targets/classifier."""

    def __init__(self, up: nn.Module, conf: Dict[str, Any], n_mels: int) -> None:
        super().__init__()
        self.up = up
        bq = conf["bestrq"]
        self.mask_prob, self.mask_span = float(bq["mask_prob"]), int(bq["mask_span"])
        self.mask_emb = nn.Parameter(torch.empty(up.hidden_dim).uniform_())
        self.rq = BestRQLoss(up.hidden_dim, n_mels, stack=2, codebook_size=int(bq["codebook_size"]),
                             codebook_dim=int(bq["codebook_dim"]), seed=int(bq["seed"]))

    def forward(self, wavs: torch.Tensor, lens: torch.Tensor, fb: torch.Tensor) -> Dict[str, torch.Tensor]:
        m = self.up.model
        feats, flens = m.feature_extractor(wavs, lens)
        x = m.encoder.feature_projection(feats)
        t = x.size(1)
        mask = span_mask(flens, t, self.mask_prob, self.mask_span)
        x = torch.where(mask.unsqueeze(-1), self.mask_emb.to(x.dtype), x)
        pad = ~valid_mask(flens, t)
        x = x.masked_fill(pad.unsqueeze(-1), 0.0)
        attn = (-10000.0 * pad.to(x.dtype))[:, None, None, :].expand(-1, 1, t, -1)
        h = m.encoder.transformer(x, attention_mask=attn)
        tgt = self.rq.targets(fb, t)
        sel = mask & ~pad
        logits = self.rq.classifier(h[sel]).float()
        loss = F.cross_entropy(logits, tgt[sel])
        acc = (logits.detach().argmax(-1) == tgt[sel]).float().mean()
        return {"loss": loss, "acc": acc}


def _fbank(fb: Fbank, wavs: List[torch.Tensor]) -> torch.Tensor:
    """Per-utterance normalised log-mel (B, T, n_mels), zero-padded."""
    mats = fb.compute_many([(w * 32768.0).numpy() for w in wavs], [str(i) for i in range(len(wavs))])
    normed = [(x - x.mean(0)) / (x.std(0) + 1e-5) for x in map(torch.from_numpy, mats)]
    return pad_list(normed)[0]


class PretrainMethod(Method):
    """Masked prediction of BEST-RQ targets on the last layer of an upstream."""

    name = "pre-training"

    def __init__(self, conf: Dict[str, Any], dev: torch.device) -> None:
        self.conf, self.dev = conf, dev
        self.seed = int(conf["seed"])
        torch.manual_seed(self.seed)
        uc, self.bt, self.tr = conf["upstream"], conf["batching"], conf["trainer"]
        self.up = load_upstream(uc["ckpt"], uc["arch"], bool(uc["trust_checkpoint"]))
        self.fb = Fbank(FbankOptions.from_dict(conf["fbank"]))
        self.model = MaskedPredictor(self.up, conf, self.fb.feat_dim).to(dev)
        sets = [WavDataset(d) for d in conf["train_data_dirs"]]
        self.items = [(s, i) for s in sets for i in range(len(s))]
        self.max_len = int(float(self.bt["max_seconds"]) * 16000)
        self.lengths = [min(s.lengths[i], self.max_len) if self.max_len else s.lengths[i] for s, i in self.items]
        log.info("pre-training on %d utterances (%s of audio after cropping); %s parameters", len(self.items),
                 humanfriendly.format_timespan(sum(self.lengths) / 16000),
                 humanfriendly.format_number(sum(p.numel() for p in self.model.parameters())))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = build_optimizer(self.params, conf["optim"])
        self.total = int(self.tr["max_updates"])
        self.sched = build_scheduler(self.opt, conf["scheduler"], self.total)
        self.crop_rng = random.Random(self.seed + 1)
        self.data = {"epoch": 0, "batch": 0}
        self.cursor = BucketCursor(self.lengths, self.bt["max_samples"], self.bt["max_batch"], self.seed)
        self.model.train()

    def options(self) -> LoopOptions:
        return LoopOptions(total_steps=self.total, max_steps=int(self.tr["max_steps"]),
                           log_interval=int(self.tr["log_interval"]), save_interval=int(self.tr["save_interval"]),
                           unit="update")

    def state_dict(self) -> Dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "data": dict(self.data), "crop_rng": self.crop_rng.getstate()}

    def load_state_dict(self, st: Dict[str, Any]) -> None:
        self.model.load_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.data = dict(st["data"])
        self.crop_rng.setstate(as_tuples(st["crop_rng"]))

    def _next_batch(self) -> List[torch.Tensor]:
        wavs = []
        for j in self.cursor.next(self.data):
            s, i = self.items[j]
            w = s.load(i)
            if self.max_len and w.numel() > self.max_len:
                b = self.crop_rng.randrange(w.numel() - self.max_len + 1)
                w = w[b: b + self.max_len]
            wavs.append(w)
        return wavs

    def train_step(self, loop: TrainingLoop) -> Optional[Dict[str, Any]]:
        wavs = self._next_batch()
        pad, lens = pad_list(wavs)
        res = self.model(pad.to(self.dev), lens.to(self.dev), _fbank(self.fb, wavs).to(self.dev))
        self.opt.zero_grad(set_to_none=True)
        res["loss"].backward()
        torch.nn.utils.clip_grad_norm_(self.params, float(self.tr["grad_clip"]))
        self.opt.step()
        self.sched.step()
        save_upstream_due(self.up, loop.out, loop.step + 1, int(self.tr["upstream_interval"]), self.total)
        return {"loss": float(res["loss"].detach()), "masked_acc": float(res["acc"]), "lr": self.sched.get_last_lr()[0],
                "epoch": f"{self.data['epoch'] + 1}"}

    def plot(self, loop: TrainingLoop) -> None:
        save_curves(os.path.join(loop.out, "loss.png"), {"masked prediction": loop.series("loss")},
                    "upstream pre-training", "update", "cross-entropy")

    def finish(self, loop: TrainingLoop, done: bool) -> None:
        if done:
            save_upstream(self.up, os.path.join(loop.out, "upstream.pth"))


@typechecked
def pretrain(conf: Dict[str, Any]) -> Dict[str, Any]:
    out = open_upstream_run(conf, "train_data_dirs", ("upstream", "fbank", "bestrq"), "pretrain")
    loop = TrainingLoop(out, PretrainMethod(conf, setup_device(conf)), int(conf["seed"]))
    loop.run()
    return {"step": loop.step, "history": loop.rows("loss", "masked_acc")}
