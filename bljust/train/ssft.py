"""LASER self-supervised fine-tuning of a HuBERT / WavLM upstream (docs/laser.md).

Each micro-step draws `batch_pairs` utterances, makes (x, x') pairs (speed + pitch
perturbation, random order), runs both through the same upstream + LaserHead in one
batch and adds LaserLoss / accum_grad to the gradients; every `accum_grad`
micro-steps the optimiser steps (clip, AdamW, linear warm-up then decay).

checkpoint.pth is written at update boundaries and holds everything the next update
depends on: the trainable parameters (the frozen ones are rebuilt from the same
initial checkpoint, or the same seed), optimiser, scheduler, the data position (epoch,
index into that epoch's permutation), the pair maker's and cropper's random streams
and the global RNGs. A resumed run is therefore bit-for-bit the uninterrupted one.
The output, upstream.pth, is {"model": torchaudio state dict, "upstream_config": the
builder arguments}, which Upstream.from_checkpoint (and bljust's loaders) read.
"""
from __future__ import annotations

import logging
import os
import random
import time
from typing import Any, Dict, List, Optional, Union

import humanfriendly
import torch
from typeguard import typechecked

from bljust.data.batching import pad_list
from bljust.data.pairs import PairMaker
from bljust.data.wav_dataset import WavDataset
from bljust.losses.laser import LaserLoss
from bljust.nets import upstream_convert as conv
from bljust.nets.upstream import LaserEncoder, Upstream
from bljust.train.checkpoint import (as_tuples, has_checkpoint, load_checkpoint, rng_state, save_atomic,
                                     save_checkpoint, set_rng_state)
from bljust.train.config import save_config, yaml_load
from bljust.train.experiment_folder import check_same_run
from bljust.train.schedulers import build_optimizer, build_scheduler
from bljust.utils.events import EventLog
from bljust.utils.plot import save_curves

log = logging.getLogger(__name__)

def resolve_arch(arch: Union[None, str, Dict[str, Any]]) -> Union[None, str, Dict[str, Any]]:
    """An arch name, a dict, or a YAML file holding the dict."""
    if isinstance(arch, str) and arch.endswith((".yaml", ".yml")):
        with open(arch, encoding="utf-8") as f:
            return yaml_load(f)
    return arch


@typechecked
def load_upstream(ckpt: Optional[str], arch: Union[None, str, Dict[str, Any]] = None, trust: bool = False,
                  **kw: Any) -> Upstream:
    """Upstream from a checkpoint (any supported layout), or random weights from `arch`."""
    arch = resolve_arch(arch)
    if not ckpt:
        if arch is None:
            raise ValueError("upstream: give a checkpoint (upstream.ckpt) or an architecture (upstream.arch)")
        return Upstream(arch, **kw)
    if not os.path.exists(ckpt):
        raise FileNotFoundError(f"upstream checkpoint {ckpt} not found")
    if arch is None:
        obj = conv.read_checkpoint(ckpt, trust=trust)
        arch = obj.get("upstream_config") if isinstance(obj.get("upstream_config"), dict) else None
    return Upstream.from_checkpoint(ckpt, arch=arch, trust=trust, **kw)


DIAG_CURVES = ("sdtw_div", "idm", "cos_near", "cos_far", "erank", "diag_dev_id", "diag_dev_pair")


def _log_diagnostics(st: Dict[str, Any], events: Any, crit: LaserLoss, k: int, z: torch.Tensor,
                     zl: torch.Tensor, div: float, reg: float) -> None:
    """The loss's two terms and the collapse / alignment statistics of the last batch
    (bljust.losses.laser_diagnostics): logged, written as TensorBoard scalars, kept for the
    curves in diagnostics.png."""
    from bljust.losses.laser_diagnostics import collapsed, laser_diagnostics

    diag = dict(sdtw_div=div, idm=reg, **laser_diagnostics(z[:k], zl[:k], z[k:], zl[k:], gamma=crit.gamma))
    log.info("diagnostics at update %d: %s", st["step"], ", ".join(f"{n} {v:.4g}" for n, v in diag.items()))
    if collapsed(diag):
        log.warning("the representation looks collapsed at update %d (far frames' cosine %.3f, effective rank "
                    "%.2f, variance %.2g): see docs/laser.md", st["step"], diag["cos_far"], diag["erank"], diag["var"])
    events.scalars(st["step"], diag, "diag/")
    st.setdefault("diag", []).append(dict(step=st["step"], **diag))


def save_upstream(up: Upstream, path: str, extra: Optional[Dict[str, torch.Tensor]] = None) -> None:
    obj: Dict[str, Any] = {"model": {k: v.detach().cpu() for k, v in up.model.state_dict().items()},
                           "upstream_config": _plain(up.config)}
    if extra:
        obj.update(extra)
    save_atomic(obj, path)


def _plain(x: Any) -> Any:
    """Tuples to lists so that the config loads with weights_only=True and dumps as YAML."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def setup_device(conf: Dict[str, Any]) -> torch.device:
    n = int(conf.get("num_threads") or 0)
    if n > 0:
        torch.set_num_threads(n)
    if int(conf.get("ngpu") or 0) > 0:
        if not torch.cuda.is_available():
            raise RuntimeError("ngpu > 0 but no CUDA device is visible")
        return torch.device("cuda")
    return torch.device("cpu")


class Progress:
    """Updates/s and ETA in humanfriendly form for the log."""

    def __init__(self, start: int, total: int) -> None:
        self.t0, self.s0, self.total = time.time(), start, total

    def line(self, step: int) -> str:
        dt = max(1e-9, time.time() - self.t0)
        rate = (step - self.s0) / dt
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        eta_s = humanfriendly.format_timespan(eta) if eta != float("inf") else "?"
        return f"{rate:.2f} updates/s, elapsed {humanfriendly.format_timespan(dt)}, ETA {eta_s}"


@typechecked
def train_laser(conf: Dict[str, Any]) -> Dict[str, Any]:
    """Runs (or resumes) LASER fine-tuning; returns a summary (steps, last loss, paths)."""
    out = conf["output_dir"]
    if not out or not conf["train_data_dir"]:
        raise ValueError("train_data_dir and output_dir are required")
    os.makedirs(out, exist_ok=True)
    check_same_run(out, conf, ("upstream", "head_dim", "loss", "pairs"), "ssft")
    save_config(conf, os.path.join(out, "config.yaml"))
    dev = setup_device(conf)
    tr, uc = conf["trainer"], conf["upstream"]
    seed = int(conf["seed"])
    torch.manual_seed(seed)  # random-weight upstreams and the head start the same in every run
    up = load_upstream(uc["ckpt"], uc["arch"], bool(uc["trust_checkpoint"]),
                       representation_layer=int(uc["representation_layer"]))
    model = LaserEncoder(up, int(conf["head_dim"]), train_last=int(uc["train_last"])).to(dev)
    params = model.trainable_parameters()
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    log.info("upstream %s, %d layers; training %s parameters (%d tensors)", up.kind, up.num_layers,
             humanfriendly.format_number(sum(p.numel() for p in params)), len(params))
    crit = LaserLoss(**conf["loss"])
    opt = build_optimizer(params, conf["optim"])
    total = int(tr["max_updates"])
    sched = build_scheduler(opt, conf["scheduler"], total)
    ds = WavDataset(conf["train_data_dir"])
    pairs = PairMaker(conf["pairs"]["speeds"], float(conf["pairs"]["semitones"]), seed=seed)
    crop_rng = random.Random(seed + 1)
    st: Dict[str, Any] = {"step": 0, "epoch": 0, "pos": 0, "history": []}

    ck_path = os.path.join(out, "checkpoint.pth")
    if has_checkpoint(out):
        ck, ck_path = load_checkpoint(out, required=("trainable", "trainable_names", "optimizer", "scheduler",
                                                     "state", "pairs_rng", "crop_rng", "rng"))
        if ck["trainable_names"] != names:
            raise RuntimeError(f"{ck_path}: trainable parameters differ from this config's")
        with torch.no_grad():
            for p, v in zip(params, ck["trainable"]):
                p.copy_(v)
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        st = ck["state"]
        pairs.rng.setstate(as_tuples(ck["pairs_rng"]))
        crop_rng.setstate(as_tuples(ck["crop_rng"]))
        set_rng_state(ck["rng"])
        log.info("resumed at update %d (epoch %d, utterance %d) from %s", st["step"], st["epoch"], st["pos"],
                 ck_path)

    def order(epoch: int) -> List[int]:
        idx = list(range(len(ds)))
        random.Random(seed * 100003 + epoch).shuffle(idx)
        return idx

    def next_utts(k: int) -> List[int]:
        got: List[int] = []
        while len(got) < k:
            perm = order(st["epoch"])
            take = perm[st["pos"]: st["pos"] + k - len(got)]
            got += take
            st["pos"] += len(take)
            if st["pos"] >= len(perm):
                st["epoch"], st["pos"] = st["epoch"] + 1, 0
        return got

    max_len = int(float(tr["max_seconds"]) * ds.fs)

    def crop(w: torch.Tensor) -> torch.Tensor:
        if max_len > 0 and w.numel() > max_len:
            b = crop_rng.randrange(w.numel() - max_len + 1)
            return w[b: b + max_len]
        return w

    def save(final: bool) -> None:
        events.flush()  # first: the event file then holds at least what the checkpoint does
        save_checkpoint({"trainable": [p.detach().cpu() for p in params], "trainable_names": names,
                     "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "state": st,
                     "pairs_rng": pairs.rng.getstate(), "crop_rng": crop_rng.getstate(), "rng": rng_state()},
                        out)
        if st["history"]:
            save_curves(os.path.join(out, "loss.png"), {"laser": [tuple(h) for h in st["history"]]},
                        "LASER fine-tuning", "update", "loss")
        if st.get("diag"):
            save_curves(os.path.join(out, "diagnostics.png"),
                        {name: [(row["step"], row[name]) for row in st["diag"]] for name in DIAG_CURVES},
                        "LASER diagnostics (collapse: cos_far -> 1, erank -> 1)", "update", "value")
        if final:
            save_upstream(model.upstream, os.path.join(out, "upstream.pth"),
                          {"laser_head": {k: v.detach().cpu() for k, v in model.head.state_dict().items()}})

    # frozen stages never train: dropout only where parameters learn (the head has none)
    model.eval()
    for layer in up.model.encoder.transformer.layers:
        if any(p.requires_grad for p in layer.parameters()):
            layer.train()
    stop = total if int(tr["max_steps"]) <= 0 else min(total, int(tr["max_steps"]))
    prog = Progress(st["step"], stop)
    events = EventLog(out, st["step"])
    accum, k = int(tr["accum_grad"]), int(tr["batch_pairs"])
    run_loss, run_n = 0.0, 0
    while st["step"] < stop:
        opt.zero_grad(set_to_none=True)
        upd_loss = 0.0
        for _ in range(accum):
            a_list, b_list = [], []
            for i in next_utts(k):
                a, b, _ = pairs(crop(ds.load(i)))
                a_list.append(a)
                b_list.append(b)
            wavs, lens = pad_list(a_list + b_list)
            z, zl = model(wavs.to(dev), lens.to(dev))
            zl = zl.clamp(min=1)
            div, reg = crit.terms(z[:k], zl[:k], z[k:], zl[k:])
            loss = (div + crit.alpha * reg).mean()
            (loss / accum).backward()
            upd_loss += float(loss.detach()) / accum
        last = (z.detach(), zl, float(div.detach().mean()), float(reg.detach().mean()))
        gnorm = torch.nn.utils.clip_grad_norm_(params, float(tr["grad_clip"]))
        opt.step()
        sched.step()
        st["step"] += 1
        st["history"].append([st["step"], upd_loss])
        events.scalars(st["step"], {"laser": upd_loss, "grad_norm": float(gnorm), "lr": sched.get_last_lr()[0]}, "train/")
        run_loss, run_n = run_loss + upd_loss, run_n + 1
        if st["step"] % int(tr["log_interval"]) == 0 or st["step"] == stop:
            log.info("update %d/%d: loss %.4f, grad norm %.3f, lr %.3g; %s", st["step"], total,
                     run_loss / run_n, float(gnorm), sched.get_last_lr()[0], prog.line(st["step"]))
            run_loss, run_n = 0.0, 0
            _log_diagnostics(st, events, crit, k, *last)
        if st["step"] % int(tr["save_interval"]) == 0 and st["step"] < stop:
            save(False)
    save(st["step"] >= total)
    done = st["step"] >= total
    log.info("%s at update %d/%d: %s", "finished" if done else "stopped (trainer.max_steps)", st["step"], total,
             os.path.join(out, "upstream.pth") if done else ck_path)
    last = st["history"][-1][1] if st["history"] else float("nan")
    return {"step": st["step"], "loss": last, "done": done, "history": st["history"]}
