"""SUPERB-style evaluation of an upstream: train a downstream on a frozen upstream, decode.

ASR: characters of `text` (word boundary '|'), BiLSTM-CTC, Adam 1e-4.
PR:  phonemes of `text.phn`, linear CTC, Adam 5e-4.
The output folder holds config.yaml (with the upstream's path and architecture),
tokens.txt, checkpoint.pth (resume: downstream, optimiser, scheduler, data position,
RNGs) and downstream.pth (the downstream with the best validation error rate, or
the last one without a validation set). Decoding writes a Kaldi `text` of words
(ASR) or phoneme sequences (PR), which sclite scores as WER or PER.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Tuple

import torch
from typeguard import typechecked

from bljust.data.batching import bucket_batches, pad_list
from bljust.data.wav_dataset import WavDataset, build_token_list, collate
from bljust.text.token_list import read_token_list, write_token_list
from bljust.text.units import units_to_text
from bljust.decode.ctc import ctc_decode
from bljust.nets.superb import SuperbModel
from bljust.train.checkpoint import (has_checkpoint, load_checkpoint, model_state, rng_state, save_atomic,
                                     save_checkpoint, set_rng_state)
from bljust.train.config import save_config, yaml_load
from bljust.train.experiment_folder import check_same_run
from bljust.train.schedulers import build_optimizer, build_scheduler
from bljust.train.base import edit_distance
from bljust.train.ssft import Progress, load_upstream, setup_device
from bljust.utils.fileio import atomic_write
from bljust.utils.events import EventLog
from bljust.utils.plot import save_curves

log = logging.getLogger(__name__)

UNIT = {"asr": "char", "pr": "phn"}


def collate_targets(ts: List[List[int]]) -> Tuple[torch.Tensor, torch.Tensor]:
    return pad_list([torch.tensor(t, dtype=torch.long) for t in ts])


class StateCache:
    """Hidden states of a frozen upstream per utterance, computed once (utterance by
    utterance through the CNN, as decoding sees them), padded per batch on demand."""

    def __init__(self, model: SuperbModel, ds: WavDataset, dev: torch.device) -> None:
        self.model, self.ds, self.dev = model, ds, dev
        self.states: Dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def batch(self, idx: List[int]) -> Tuple[List[torch.Tensor], torch.Tensor]:
        for i in idx:
            if i not in self.states:
                w = self.ds.load(i).to(self.dev)[None]
                hs, _ = self.model.upstream(w, torch.tensor([w.size(1)], device=self.dev))
                self.states[i] = torch.stack([h[0] for h in hs]).cpu()  # (L+1, T, D)
        lens = torch.tensor([self.states[i].size(1) for i in idx])
        L, _, D = self.states[idx[0]].shape
        out = torch.zeros(L, len(idx), int(lens.max()), D)
        for j, i in enumerate(idx):
            out[:, j, : lens[j]] = self.states[i]
        return [h.to(self.dev) for h in out], lens.to(self.dev)


def states_loss(model: SuperbModel, states: List[torch.Tensor], lens: torch.Tensor, ys: torch.Tensor,
                y_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """SuperbModel.forward from precomputed hidden states: (loss per utterance, log-probs)."""
    x = model.featurizer(states)
    logp = torch.log_softmax(model.head(x, lens).float(), dim=-1)
    loss = torch.nn.functional.ctc_loss(logp.transpose(0, 1), ys, lens, y_lens, blank=model.blank_id,
                                        reduction="sum", zero_infinity=True) / len(states[0])
    return loss, logp


def build_model(conf: Dict[str, Any], vocab_size: int) -> SuperbModel:
    uc = conf["upstream"]
    up = load_upstream(uc["ckpt"], uc["arch"], bool(uc["trust_checkpoint"]))
    return SuperbModel(up, conf["task"], vocab_size, **conf["model"])


@torch.no_grad()
def evaluate(model: SuperbModel, ds: WavDataset, max_samples: int, max_batch: int, dev: torch.device,
             cache: "StateCache | None" = None) -> Tuple[float, float]:
    """(mean CTC loss per utterance, greedy token error rate in %) on a labeled set."""
    model.eval()
    tot_loss, errs, n_ref, n = 0.0, 0, 0, 0
    for idx in bucket_batches(ds.lengths, max_samples, max_batch):
        if cache is not None:
            ys, y_lens = collate_targets([ds.targets[i] for i in idx])
            states, olens = cache.batch(idx)
            loss, logp = states_loss(model, states, olens, ys.to(dev), y_lens.to(dev))
        else:
            _, wavs, lens, ys, y_lens = collate([ds[i] for i in idx])
            wavs, lens = wavs.to(dev), lens.to(dev)
            loss, _ = model(wavs, lens, ys.to(dev), y_lens.to(dev))
            logp, olens = model.log_probs(wavs, lens)
        for j, hyp in enumerate(ctc_decode(logp.cpu(), olens.cpu(), "greedy", blank_id=model.blank_id)):
            ref = ys[j, : int(y_lens[j])].tolist()
            errs += edit_distance(ref, hyp[0].tokens)
            n_ref += len(ref)
        tot_loss += float(loss) * len(idx)
        n += len(idx)
    model.train()
    return tot_loss / max(1, n), 100.0 * errs / max(1, n_ref)


@typechecked
def train_superb(conf: Dict[str, Any]) -> Dict[str, Any]:
    """Trains (or resumes) a SUPERB downstream; returns the last stats."""
    out, task = conf["output_dir"], conf["task"]
    if task not in UNIT:
        raise ValueError(f"task must be asr or pr, got {task!r}")
    if not out or not conf["train_data_dir"]:
        raise ValueError("train_data_dir and output_dir are required")
    os.makedirs(out, exist_ok=True)
    dev = setup_device(conf)
    unit = UNIT[task]
    check_same_run(out, conf, ("task", "upstream", "model"), "superb")  # before anything in `out` changes
    tok_path = os.path.join(out, "tokens.txt")
    if not os.path.isfile(tok_path):
        write_token_list(build_token_list(conf["train_data_dir"], unit), tok_path)
    tokens = read_token_list(tok_path)
    save_config(conf, os.path.join(out, "config.yaml"))
    bt, tr = conf["batching"], conf["trainer"]
    ds = WavDataset(conf["train_data_dir"], unit, tokens, max_samples=int(bt["max_utt_samples"]))
    valid = WavDataset(conf["valid_data_dir"], unit, tokens) if conf["valid_data_dir"] else None
    seed = int(conf["seed"])
    torch.manual_seed(seed)
    model = build_model(conf, len(tokens)).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    use_cache = bool(tr["cache_upstream"])
    if use_cache:
        model.upstream.exact_padding = True
    cache = StateCache(model, ds, dev) if use_cache else None
    vcache = StateCache(model, valid, dev) if use_cache and valid is not None else None
    log.info("%s downstream: %d tokens, %d trainable parameters; %d training utterances", task, len(tokens),
             sum(p.numel() for p in params), len(ds))
    opt = build_optimizer(params, conf["optim"])
    total = int(tr["max_updates"])
    sched = build_scheduler(opt, conf["scheduler"], total)
    st: Dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "history": [], "valid": [], "best": None}
    ck_path = os.path.join(out, "checkpoint.pth")
    if has_checkpoint(out):
        ck, ck_path = load_checkpoint(out, required=("model", "optimizer", "scheduler", "state", "rng"))
        model.load_downstream_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        st = ck["state"]
        set_rng_state(ck["rng"])
        log.info("resumed at step %d from %s", st["step"], ck_path)

    def save() -> None:
        events.flush()  # first: the event file then holds at least what the checkpoint does
        save_checkpoint({"model": model.downstream_state_dict(), "optimizer": opt.state_dict(),
                         "scheduler": sched.state_dict(), "state": st, "rng": rng_state()}, out)
        series = {"train": [tuple(h) for h in st["history"]]}
        if st["valid"]:
            series["valid"] = [(s, l) for s, l, _ in st["valid"]]
        save_curves(os.path.join(out, "loss.png"), series, f"SUPERB {task}", "step", "CTC loss")

    def validate() -> None:
        if valid is None:
            save_atomic(model.downstream_state_dict(), os.path.join(out, "downstream.pth"))
            return
        vl, ver = evaluate(model, valid, int(bt["max_samples"]), int(bt["max_batch"]), dev, vcache)
        st["valid"].append([st["step"], vl, ver])
        events.scalars(st["step"], {"loss": vl, "error_rate": ver}, "valid/")
        better = st["best"] is None or ver < st["best"][1]
        log.info("step %d: valid loss %.3f, greedy %s %.2f%%%s", st["step"], vl, "CER" if unit == "char" else "PER",
                 ver, " (best)" if better else "")
        if better:
            st["best"] = [st["step"], ver]
            save_atomic(model.downstream_state_dict(), os.path.join(out, "downstream.pth"))

    stop = total if int(tr["max_steps"]) <= 0 else min(total, int(tr["max_steps"]))
    prog = Progress(st["step"], stop)
    events = EventLog(out, st["step"])
    model.train()
    run_loss, run_n = 0.0, 0
    while st["step"] < stop:
        batches = bucket_batches(ds.lengths, int(bt["max_samples"]), int(bt["max_batch"]), seed=seed + st["epoch"])
        if st["batch"] >= len(batches):
            st["epoch"], st["batch"] = st["epoch"] + 1, 0
            continue
        idx = batches[st["batch"]]
        st["batch"] += 1
        if cache is not None:
            ys, y_lens = collate_targets([ds.targets[i] for i in idx])
            states, slens = cache.batch(idx)
            loss, _ = states_loss(model, states, slens, ys.to(dev), y_lens.to(dev))
        else:
            _, wavs, lens, ys, y_lens = collate([ds[i] for i in idx])
            loss, _ = model(wavs.to(dev), lens.to(dev), ys.to(dev), y_lens.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, float(tr["grad_clip"]))
        opt.step()
        sched.step()
        st["step"] += 1
        st["history"].append([st["step"], float(loss.detach())])
        events.scalars(st["step"], {"loss": float(loss.detach()), "lr": sched.get_last_lr()[0]}, "train/")
        run_loss, run_n = run_loss + float(loss.detach()), run_n + 1
        if st["step"] % int(tr["log_interval"]) == 0 or st["step"] == stop:
            log.info("step %d/%d (epoch %d): loss %.3f, lr %.3g; %s", st["step"], total, st["epoch"] + 1,
                     run_loss / run_n, sched.get_last_lr()[0], prog.line(st["step"]))
            run_loss, run_n = 0.0, 0
        if st["step"] % int(tr["valid_interval"]) == 0 or st["step"] == total:
            validate()
            save()
    if st["step"] < total:  # stopped early: keep a usable model anyway
        if not os.path.isfile(os.path.join(out, "downstream.pth")):
            validate()
        save()
    w = model.featurizer.normalized().tolist()
    log.info("layer weights: %s", " ".join(f"{x:.3f}" for x in w))
    return {"step": st["step"], "history": st["history"], "valid": st["valid"], "best": st["best"],
            "layer_weights": w}


def load_trained(model_dir: str, device: str = "cpu") -> Tuple[SuperbModel, Dict[str, Any], List[str]]:
    with open(os.path.join(model_dir, "config.yaml"), encoding="utf-8") as f:
        conf = yaml_load(f)
    tokens = read_token_list(os.path.join(model_dir, "tokens.txt"))
    model = build_model(conf, len(tokens))
    # the CNN saw each utterance alone in training when states were cached: decode alike
    model.upstream.exact_padding = bool(conf["trainer"].get("cache_upstream", False))
    model.load_downstream_state_dict(model_state(os.path.join(model_dir, "downstream.pth")))
    return model.to(device).eval(), conf, tokens


@typechecked
def decode_superb(model_dir: str, data_dir: str, output_dir: str, method: str = "greedy", beam_size: int = 10,
                  max_samples: int = 3200000, max_batch: int = 16, ngpu: int = 0) -> int:
    """Writes output_dir/text (words for ASR, phonemes for PR); returns the utterance count."""
    dev = torch.device("cuda" if ngpu > 0 else "cpu")
    model, conf, tokens = load_trained(model_dir, str(dev))
    unit = UNIT[conf["task"]]
    ds = WavDataset(data_dir)  # unlabeled view: every readable utterance is decoded
    hyps: Dict[str, str] = {}
    with torch.no_grad():
        for idx in bucket_batches(ds.lengths, max_samples, max_batch):
            ids, wavs, lens, _, _ = collate([ds[i] for i in idx])
            logp, olens = model.log_probs(wavs.to(dev), lens.to(dev))
            for u, nb in zip(ids, ctc_decode(logp.cpu(), olens.cpu(), method, beam_size, blank_id=model.blank_id)):
                hyps[u] = units_to_text([tokens[t] for t in nb[0].tokens if t > 1], unit)
    os.makedirs(output_dir, exist_ok=True)
    with atomic_write(os.path.join(output_dir, "text")) as f:
        for u in sorted(hyps):
            f.write(f"{u} {hyps[u]}\n".replace(" \n", "\n"))
    log.info("decoded %d utterances of %s into %s/text", len(hyps), data_dir, output_dir)
    return len(hyps)
