"""Small HuBERT-style pre-training of an upstream, for recipes without a released model.

Masked prediction as in HuBERT, with BEST-RQ targets instead of k-means clusters:
the utterance's fbank (10 ms, per-utterance mean/variance normalised) is stacked by
2 to the upstream's 20 ms frame rate, projected by a frozen random matrix and mapped
to the nearest entry of a frozen random codebook (bljust.losses.bestrq). Spans of
the CNN features are replaced by a learned mask embedding before the transformer,
and a linear classifier on the last layer predicts the targets of masked frames.
The output upstream.pth has the same layout as bljust.bin.ssft's, so every consumer
(ssft, train_superb) reads it with Upstream.from_checkpoint.
"""
from __future__ import annotations

import logging
import os
import random
from typing import Any, Dict, List

import humanfriendly
import torch
import torch.nn.functional as F
from torch import nn
from typeguard import typechecked

from bljust.data.batching import bucket_batches, pad_list
from bljust.data.wav_dataset import WavDataset
from bljust.features.fbank import Fbank, FbankOptions
from bljust.losses.bestrq import BestRQLoss
from bljust.losses.masking import span_mask, valid_mask
from bljust.train.checkpoint import (as_tuples, has_checkpoint, load_checkpoint, rng_state, save_checkpoint,
                                     set_rng_state)
from bljust.train.config import save_config
from bljust.train.experiment_folder import check_same_run
from bljust.train.schedulers import build_optimizer, build_scheduler
from bljust.train.ssft import Progress, load_upstream, save_upstream, setup_device
from bljust.utils.events import EventLog
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


@typechecked
def pretrain(conf: Dict[str, Any]) -> Dict[str, Any]:
    out = conf["output_dir"]
    dirs = conf["train_data_dirs"]
    if not out or not dirs:
        raise ValueError("train_data_dirs and output_dir are required")
    os.makedirs(out, exist_ok=True)
    check_same_run(out, conf, ("upstream", "fbank", "bestrq"), "pretrain")
    save_config(conf, os.path.join(out, "config.yaml"))
    dev = setup_device(conf)
    seed = int(conf["seed"])
    torch.manual_seed(seed)
    uc, bt, tr = conf["upstream"], conf["batching"], conf["trainer"]
    up = load_upstream(uc["ckpt"], uc["arch"], bool(uc["trust_checkpoint"]))
    fb = Fbank(FbankOptions.from_dict(conf["fbank"]))
    model = MaskedPredictor(up, conf, fb.feat_dim).to(dev)
    sets = [WavDataset(d) for d in dirs]
    items = [(s, i) for s in sets for i in range(len(s))]
    max_len = int(float(bt["max_seconds"]) * 16000)
    lengths = [min(s.lengths[i], max_len) if max_len else s.lengths[i] for s, i in items]
    log.info("pre-training on %d utterances (%s of audio after cropping); %s parameters", len(items),
             humanfriendly.format_timespan(sum(lengths) / 16000),
             humanfriendly.format_number(sum(p.numel() for p in model.parameters())))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = build_optimizer(params, conf["optim"])
    total = int(tr["max_updates"])
    sched = build_scheduler(opt, conf["scheduler"], total)
    crop_rng = random.Random(seed + 1)
    st: Dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "history": []}
    ck_path = os.path.join(out, "checkpoint.pth")
    if has_checkpoint(out):
        ck, ck_path = load_checkpoint(out, required=("model", "optimizer", "scheduler", "state", "crop_rng", "rng"))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        st = ck["state"]
        crop_rng.setstate(as_tuples(ck["crop_rng"]))
        set_rng_state(ck["rng"])
        log.info("resumed at update %d from %s", st["step"], ck_path)

    def save(final: bool) -> None:
        events.flush()  # first: the event file then holds at least what the checkpoint does
        save_checkpoint({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                         "state": st, "crop_rng": crop_rng.getstate(), "rng": rng_state()}, out)
        save_curves(os.path.join(out, "loss.png"), {"masked prediction": [tuple(h[:2]) for h in st["history"]]},
                    "upstream pre-training", "update", "cross-entropy")
        if final:
            save_upstream(up, os.path.join(out, "upstream.pth"))

    stop = total if int(tr["max_steps"]) <= 0 else min(total, int(tr["max_steps"]))
    prog = Progress(st["step"], stop)
    events = EventLog(out, st["step"])
    model.train()
    acc_sum = loss_sum = 0.0
    n = 0
    while st["step"] < stop:
        batches = bucket_batches(lengths, int(bt["max_samples"]), int(bt["max_batch"]), seed=seed + st["epoch"])
        if st["batch"] >= len(batches):
            st["epoch"], st["batch"] = st["epoch"] + 1, 0
            continue
        wavs = []
        for j in batches[st["batch"]]:
            s, i = items[j]
            w = s.load(i)
            if max_len and w.numel() > max_len:
                b = crop_rng.randrange(w.numel() - max_len + 1)
                w = w[b: b + max_len]
            wavs.append(w)
        st["batch"] += 1
        pad, lens = pad_list(wavs)
        res = model(pad.to(dev), lens.to(dev), _fbank(fb, wavs).to(dev))
        opt.zero_grad(set_to_none=True)
        res["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, float(tr["grad_clip"]))
        opt.step()
        sched.step()
        st["step"] += 1
        st["history"].append([st["step"], float(res["loss"].detach()), float(res["acc"])])
        events.scalars(st["step"], {"loss": st["history"][-1][1], "masked_acc": st["history"][-1][2],
                                    "lr": sched.get_last_lr()[0]}, "train/")
        loss_sum, acc_sum, n = loss_sum + float(res["loss"].detach()), acc_sum + float(res["acc"]), n + 1
        if st["step"] % int(tr["log_interval"]) == 0 or st["step"] == stop:
            log.info("update %d/%d (epoch %d): loss %.3f, masked accuracy %.3f, lr %.3g; %s", st["step"], total,
                     st["epoch"] + 1, loss_sum / n, acc_sum / n, sched.get_last_lr()[0], prog.line(st["step"]))
            acc_sum = loss_sum = 0.0
            n = 0
        if st["step"] % int(tr["save_interval"]) == 0 and st["step"] < stop:
            save(False)
    save(st["step"] >= total)
    return {"step": st["step"], "history": st["history"]}
