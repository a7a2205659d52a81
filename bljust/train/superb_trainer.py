"""SUPERB-style evaluation of an upstream: train a downstream on a frozen upstream, decode.

ASR: characters of `text` (word boundary '|'), BiLSTM-CTC, Adam 1e-4.
PR:  phonemes of `text.phn`, linear CTC, Adam 5e-4.
The output folder holds config.yaml (with the upstream's path and architecture),
tokens.txt, checkpoint.pth (the training core's layout, bljust.train.loop; the method's
part: downstream, optimiser, scheduler, data position, best round) and downstream.pth (the downstream with the best validation error rate, or
the last one without a validation set). Decoding writes a Kaldi `text` of words
(ASR) or phoneme sequences (PR), which sclite scores as WER or PER.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import torch
from typeguard import typechecked

from bljust.data.batching import BucketCursor, bucket_batches, pad_list
from bljust.data.wav_dataset import WavDataset, build_token_list, collate
from bljust.decode.ctc import ctc_decode
from bljust.nets.model_file import model_state
from bljust.nets.superb import SuperbModel
from bljust.text.token_list import read_token_list, write_token_list
from bljust.text.units import units_to_text
from bljust.train.base import edit_distance
from bljust.train.checkpoint import save_atomic
from bljust.train.config import yaml_load
from bljust.train.experiment_folder import open_upstream_run
from bljust.train.loop import LoopOptions, Method, TrainingLoop, setup_device
from bljust.train.schedulers import build_optimizer, build_scheduler
from bljust.train.upstream_io import load_upstream
from bljust.utils.fileio import atomic_write
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


class SuperbMethod(Method):
    """A downstream on a frozen upstream: CTC on batches of the training set, validation every
    trainer.valid_interval updates; downstream.pth is the best by greedy error rate."""

    def __init__(self, conf: Dict[str, Any], dev: torch.device, tokens: List[str], out: str) -> None:
        self.conf, self.dev, self.out = conf, dev, out
        self.task, self.unit = conf["task"], UNIT[conf["task"]]
        self.name = f"SUPERB {self.task}"
        self.bt, self.tr = conf["batching"], conf["trainer"]
        self.ds = WavDataset(conf["train_data_dir"], self.unit, tokens, max_samples=int(self.bt["max_utt_samples"]))
        self.valid = WavDataset(conf["valid_data_dir"], self.unit, tokens) if conf["valid_data_dir"] else None
        self.seed = int(conf["seed"])
        torch.manual_seed(self.seed)
        self.model = build_model(conf, len(tokens)).to(dev)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        use_cache = bool(self.tr["cache_upstream"])
        if use_cache:
            self.model.upstream.exact_padding = True
        self.cache = StateCache(self.model, self.ds, dev) if use_cache else None
        self.vcache = StateCache(self.model, self.valid, dev) if use_cache and self.valid is not None else None
        log.info("%s downstream: %d tokens, %d trainable parameters; %d training utterances", self.task, len(tokens),
                 sum(p.numel() for p in self.params), len(self.ds))
        self.opt = build_optimizer(self.params, conf["optim"])
        self.total = int(self.tr["max_updates"])
        self.sched = build_scheduler(self.opt, conf["scheduler"], self.total)
        self.data: Dict[str, Any] = {"epoch": 0, "batch": 0, "best": None}
        self.cursor = BucketCursor(self.ds.lengths, self.bt["max_samples"], self.bt["max_batch"], self.seed)
        self.model.train()

    def options(self) -> LoopOptions:
        return LoopOptions(total_steps=self.total, max_steps=int(self.tr["max_steps"]),
                           log_interval=int(self.tr["log_interval"]), unit="update")

    def state_dict(self) -> Dict[str, Any]:
        return {"model": self.model.downstream_state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "data": dict(self.data)}

    def load_state_dict(self, st: Dict[str, Any]) -> None:
        self.model.load_downstream_state_dict(st["model"])
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.data = dict(st["data"])

    def train_step(self, loop: TrainingLoop) -> Optional[Dict[str, Any]]:
        d = self.data
        idx = self.cursor.next(d)
        dev = self.dev
        if self.cache is not None:
            ys, y_lens = collate_targets([self.ds.targets[i] for i in idx])
            states, slens = self.cache.batch(idx)
            loss, _ = states_loss(self.model, states, slens, ys.to(dev), y_lens.to(dev))
        else:
            _, wavs, lens, ys, y_lens = collate([self.ds[i] for i in idx])
            loss, _ = self.model(wavs.to(dev), lens.to(dev), ys.to(dev), y_lens.to(dev))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, float(self.tr["grad_clip"]))
        self.opt.step()
        self.sched.step()
        return {"loss": float(loss.detach()), "lr": self.sched.get_last_lr()[0], "epoch": str(d["epoch"] + 1)}

    def round_due(self, step: int) -> bool:
        return step % int(self.tr["valid_interval"]) == 0 or step == self.total

    def end_round(self, loop: TrainingLoop) -> Dict[str, Any]:
        path = os.path.join(self.out, "downstream.pth")
        if self.valid is None:  # no validation set: the last downstream
            save_atomic(self.model.downstream_state_dict(), path)
            return {}
        vl, ver = evaluate(self.model, self.valid, int(self.bt["max_samples"]), int(self.bt["max_batch"]), self.dev,
                           self.vcache)
        better = self.data["best"] is None or ver < self.data["best"][1]
        log.info("update %d: valid loss %.3f, greedy %s %.2f%%%s", loop.step, vl, "CER" if self.unit == "char" else
                 "PER", ver, " (best)" if better else "")
        if better:
            self.data["best"] = [loop.step, ver]
            save_atomic(self.model.downstream_state_dict(), path)
        return {"valid_loss": vl, "error_rate": ver}

    def plot(self, loop: TrainingLoop) -> None:
        series = {"train": loop.series("loss")}
        if self.valid is not None:
            series["valid"] = loop.series("valid_loss", "history")
        save_curves(os.path.join(self.out, "loss.png"), series, self.name, "update", "CTC loss")

    def finish(self, loop: TrainingLoop, done: bool) -> None:
        if not os.path.isfile(os.path.join(self.out, "downstream.pth")):  # stopped early: a usable model anyway
            self.end_round(loop)
        w = self.model.featurizer.normalized().tolist()
        log.info("layer weights: %s", " ".join(f"{x:.3f}" for x in w))


@typechecked
def train_superb(conf: Dict[str, Any]) -> Dict[str, Any]:
    """Trains (or resumes) a SUPERB downstream; returns the last stats."""
    task = conf["task"]
    if task not in UNIT:
        raise ValueError(f"task must be asr or pr, got {task!r}")
    out = open_upstream_run(conf, "train_data_dir", ("task", "upstream", "model"), "superb")
    dev = setup_device(conf)
    tok_path = os.path.join(out, "tokens.txt")  # the first run's, kept for every resume
    if not os.path.isfile(tok_path):
        write_token_list(build_token_list(conf["train_data_dir"], UNIT[task]), tok_path)
    tokens = read_token_list(tok_path)
    method = SuperbMethod(conf, dev, tokens, out)
    loop = TrainingLoop(out, method, int(conf["seed"]))
    loop.run()
    valid = [[h["step"], h["valid_loss"], h["error_rate"]] for h in loop.state["history"] if "valid_loss" in h]
    return {"step": loop.step, "history": loop.rows("loss"), "valid": valid, "best": method.data["best"],
            "layer_weights": method.model.featurizer.normalized().tolist()}


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
