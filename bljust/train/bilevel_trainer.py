"""The BL-JUST training loop: two batch streams, the PBGD schedule, validation, exact resume.

The update rules live in bilevel.py; this module feeds them (a labeled and an
unlabeled stream that cycle independently, each with its own epoch and position),
logs f, g, γ, the penalty estimate and the gradient norms and cosine (docs/bljust.md,
"What is logged"), validates every `valid_interval` steps, and
checkpoints everything a resumed run needs (step, both streams, the three
optimisers and their schedules, v̂, RNG states). Validation, checkpoint
selection, averaging and curves are the supervised trainer's.
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import humanfriendly
import torch
from torch import nn

from bljust.data.batching import epoch_order, make_batches, shard
from bljust.data.dataset import ASRDataset, collate
from bljust.nets.asr_model import ASRModel
from bljust.train import distributed as D
from bljust.train import experiment_folder as folder
from bljust.train.bilevel import PBGD, NonFiniteLoss, PBGDConfig, ParamGroups, phase_of
from bljust.train.base import TooManyBadSteps, TrainerBase, autocast
from bljust.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from bljust.train.schedulers import build_optimizer, build_scheduler
from bljust.utils.plot import save_curves, save_panels

logger = logging.getLogger(__name__)


class BatchStream:
    """Endless length-bucketed batches of one dataset; (epoch, pos) is all its state.

    With num_workers > 0 the features are read and collated by DataLoader worker
    processes that run ahead of the training step; (epoch, pos) still counts the
    batches handed out, so a checkpoint never includes prefetched ones."""

    def __init__(self, dataset: torch.utils.data.Dataset, lengths: Dict[str, int], batching: Dict[str, Any],
                 seed: int, dist: D.DistInfo, num_workers: int = 0, pin_memory: bool = False) -> None:
        self.dataset, self.seed, self.dist = dataset, seed, dist
        self.num_workers, self.pin_memory = int(num_workers), bool(pin_memory)
        self.batches = make_batches(lengths, int(batching["batch_bins"]), int(batching.get("max_batch_size", 0)),
                                    min_batch_size=dist.world_size)
        self.epoch, self.pos = 1, 0
        self._order: Tuple[int, List[int]] = (0, [])
        self._it: Optional[Iterator[Dict[str, Any]]] = None

    def __len__(self) -> int:
        return len(self.batches)

    def _global_from(self, epoch: int, pos: int) -> Iterator[List[str]]:
        while True:
            if pos >= len(self.batches):
                epoch, pos = epoch + 1, 0
            order = epoch_order(len(self.batches), self.seed, epoch)
            for p in range(pos, len(order)):
                yield self.batches[order[p]]
            pos = len(order)

    def _loader(self) -> Iterator[Dict[str, Any]]:
        keys = (shard(b, self.dist.rank, self.dist.world_size) for b in self._global_from(self.epoch, self.pos))
        # its own generator: creating the iterator must not draw from the global RNG
        # (dropout's), or a resumed run would diverge from the uninterrupted one
        return iter(torch.utils.data.DataLoader(
            self.dataset, batch_sampler=keys, collate_fn=collate, num_workers=self.num_workers,
            pin_memory=self.pin_memory, generator=torch.Generator().manual_seed(self.seed)))

    def next(self) -> Dict[str, Any]:
        if self._it is None:
            self._it = self._loader()
        if self.pos >= len(self.batches):
            self.epoch, self.pos = self.epoch + 1, 0
        if self._order[0] != self.epoch:
            self._order = (self.epoch, epoch_order(len(self.batches), self.seed, self.epoch))
        b = next(self._it)
        b["global_size"] = len(self.batches[self._order[1][self.pos]])
        self.pos += 1
        return b

    def state_dict(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, st: Dict[str, int]) -> None:
        self.epoch, self.pos = int(st["epoch"]), int(st["pos"])
        self._it = None  # restart the (prefetching) loader at the restored position


def build_unsup_loss(conf: Dict[str, Any], model: ASRModel) -> nn.Module:
    conf = dict(conf)
    name = conf.pop("name", "cpc")
    if name == "cpc":
        from bljust.losses.cpc import CPCLoss

        return CPCLoss(model.encoder.output_dim, **conf)
    if name == "bestrq":
        from bljust.losses.bestrq import BestRQLoss

        return BestRQLoss(model.encoder.output_dim, model.input_dim, stack=model.encoder.subsample.rate, **conf)
    if name == "laser":
        from bljust.losses.laser_lower import LaserLowerLoss

        return LaserLowerLoss(model.encoder.output_dim, **conf)
    raise ValueError(f"unknown unsup.name '{name}' (cpc, bestrq, laser)")


def phase_steps(bc: Dict[str, Any], n_lab: int, n_unlab: int) -> Dict[str, int]:
    """Phase lengths in steps, from (in order of precedence) a budget of encoder passes
    split by `budget_fractions`, `<phase>_epochs` (explore: of the unlabeled stream,
    joint and fine-tune: of the labeled one), or the steps themselves."""
    if bc.get("budget_passes"):
        budget = float(bc["budget_passes"])
        fr = [float(x) for x in bc.get("budget_fractions") or (0.25, 0.5, 0.25)]
        if len(fr) != 3 or min(fr) < 0 or sum(fr) <= 0:
            raise ValueError(f"bilevel.budget_fractions must be 3 non-negative numbers, got {fr}")
        fr = [x / sum(fr) for x in fr]
        k = int(bc.get("k", 1))
        # passes per joint step: K lower-level g passes, one f, and one g unless it is reused
        per_joint = k + 1 + (0 if bc.get("reuse_lower_grad") and k > 0 else 1)
        return {"n1": int(round(fr[0] * budget)), "n2": int(round(fr[1] * budget / per_joint)),
                "n3": int(round(fr[2] * budget))}
    out = {}
    for key, per_epoch in (("n1", n_unlab), ("n2", n_lab), ("n3", n_lab)):
        ep = bc.get(f"{key}_epochs")
        out[key] = int(round(float(ep) * per_epoch)) if ep is not None else int(bc.get(key, 0))
    return out


class BilevelTrainer(TrainerBase):
    """BL-JUST: the PBGD rule of bilevel.py fed by a labeled and an unlabeled stream."""

    def __init__(self, config: Dict[str, Any], model: ASRModel, train_set: ASRDataset, unlab_set: Any,
                 valid_set: Optional[ASRDataset], tokenizer: Any, dist: D.DistInfo, device: torch.device) -> None:
        super().__init__(config, model, train_set, valid_set, tokenizer, dist, device)
        if self.amp == "fp16":
            raise ValueError("BL-JUST training supports trainer.amp none or bf16 (fp16 needs a scaler per level)")
        loading = dict(num_workers=int(self.tc.get("num_workers", 0)), pin_memory=device.type == "cuda")
        self.lab = BatchStream(train_set, train_set.lengths, config["batching"], self.seed, dist, **loading)
        self.unlab = BatchStream(unlab_set, unlab_set.lengths, config.get("unlab_batching") or config["batching"],
                                 self.seed + 1, dist, **loading)
        bc = dict(config["bilevel"])
        steps = phase_steps(bc, len(self.lab), len(self.unlab))
        known = set(PBGDConfig.__dataclass_fields__) - {"n1", "n2", "n3", "grad_clip"}
        # trainer.grad_clip clips every update of every level, as in the other trainers
        self.pcfg = PBGDConfig(**{k: v for k, v in bc.items() if k in known}, **steps,
                               grad_clip=float(self.tc["grad_clip"]))
        self.unsup = build_unsup_loss(config["unsup"], model).to(device)
        groups = ParamGroups(theta=list(model.encoder.parameters()), phi=list(model.ctc_head.parameters()),
                             eta=[p for p in self.unsup.parameters() if p.requires_grad])
        self._last_unlab: Optional[Dict[str, Any]] = None
        self.shadow = None
        if bc.get("penalty_ref") == "shadow":
            # a copy of (θ, η) trained on g alone, on the same unlabeled batches: its g estimates v*
            import copy

            self.shadow = nn.ModuleDict({"model": copy.deepcopy(model), "unsup": copy.deepcopy(self.unsup)})
            self.shadow_opt = build_optimizer([p for p in self.shadow.parameters() if p.requires_grad],
                                              config["optim_ll"])
            groups.shadow = (self.shadow, self._shadow_step)
        total = self.pcfg.total_steps
        self.opts, self.scheds = {}, {}
        for name, params, n in (("ll", groups.lower(), self.pcfg.n1 + self.pcfg.n2 * self.pcfg.k),
                                ("ul", groups.upper(), self.pcfg.n2), ("ft", groups.finetune(), self.pcfg.n3)):
            self.opts[name] = build_optimizer(params, config[f"optim_{name}"])
            self.scheds[name] = build_scheduler(self.opts[name], config.get(f"scheduler_{name}") or {"name": "constant"},
                                                max(1, n))
        self.pbgd = PBGD(self.pcfg, groups, self._f, self._g, self.opts["ll"], self.opts["ul"], self.opts["ft"],
                         on_step=self._on_opt_step, reduce_grads=self._allreduce if dist.enabled else None)
        self.state: Dict[str, Any] = {"step": 0, "round": 1, "bad_losses": 0, "history": [], "curve": [],
                                      "log": [], "epoch_loss_sum": 0.0, "epoch_utts": 0, "wall": 0.0}
        self._t_mark = time.time()
        self._start_or_resume()
        logger.info("BL-JUST schedule: explore %d, joint %d (K=%d, gamma %s %.3g->%.3g), fine-tune %d steps; "
                    "%d labeled / %d unlabeled batches per epoch, %d loader workers per stream",
                    self.pcfg.n1, self.pcfg.n2, self.pcfg.k, self.pcfg.gamma_schedule, self.pcfg.gamma0,
                    self.pcfg.gamma_max, self.pcfg.n3, len(self.lab), len(self.unlab), self.lab.num_workers)

    # ---------------------------------------------------------------- the two losses
    def _shadow_step(self) -> float:
        b = self._last_unlab
        with autocast(self.device, self.amp):
            loss, _ = self.shadow["unsup"](self.shadow["model"], b["feats"], b["feat_lens"])
        self.shadow_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.shadow_opt.step()
        return float(loss.detach())

    def _on_opt_step(self, opt: torch.optim.Optimizer) -> None:
        for name, o in self.opts.items():
            if o is opt:
                self.scheds[name].step()

    def _allreduce(self, grads: List[torch.Tensor]) -> List[torch.Tensor]:
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        out, i = [], 0
        for g in grads:
            out.append(flat[i:i + g.numel()].view_as(g))
            i += g.numel()
        return out

    def _batch(self, stream: BatchStream) -> Tuple[Dict[str, Any], float]:
        b = stream.next()
        b["feats"], b["feat_lens"] = self.features(b, stream.dataset)
        for k in ("ys", "y_lens"):
            b[k] = b[k].to(self.device)
        # gradients are summed over ranks: weight each rank's mean by its share of the global batch
        return b, b["feats"].size(0) / b["global_size"]

    def _f(self) -> Tuple[torch.Tensor, Dict[str, float]]:
        b, w = self._batch(self.lab)
        with autocast(self.device, self.amp):
            loss, stats = self.model(b["feats"], b["feat_lens"], b["ys"], b["y_lens"])
        if D.any_true(not bool(torch.isfinite(loss)), self.dist, self.device):  # every rank skips together
            raise NonFiniteLoss(f"supervised loss {stats['loss']} on {b['keys'][:3]}...")
        self.state["epoch_loss_sum"] += float(loss.detach()) * b["feats"].size(0)
        self.state["epoch_utts"] += b["feats"].size(0)
        return loss * w, stats

    def _g(self) -> Tuple[torch.Tensor, Dict[str, float]]:
        b, w = self._batch(self.unlab)
        with autocast(self.device, self.amp):
            loss, stats = self.unsup(self.model, b["feats"], b["feat_lens"])
        if D.any_true(not bool(torch.isfinite(loss)), self.dist, self.device):
            raise NonFiniteLoss(f"unsupervised loss {float(loss)} on {b['keys'][:3]}...")
        self._last_unlab = b
        return loss * w, stats

    # ---------------------------------------------------------------- checkpoints
    def _resume(self) -> None:
        ck, path = load_checkpoint(self.out, required=("model", "unsup", "pbgd", "schedulers", "streams", "state",
                                                       "rng"))
        self.model.load_state_dict(ck["model"])
        self.unsup.load_state_dict(ck["unsup"])
        self.pbgd.load_state_dict(ck["pbgd"])
        for name, s in self.scheds.items():
            s.load_state_dict(ck["schedulers"][name])
        if self.shadow is not None:
            self.shadow.load_state_dict(ck["shadow"]["modules"])
            self.shadow_opt.load_state_dict(ck["shadow"]["opt"])
        self.lab.load_state_dict(ck["streams"]["lab"])
        self.unlab.load_state_dict(ck["streams"]["unlab"])
        self.state = ck["state"]
        rngs = ck["rng"]
        set_rng_state(rngs[self.dist.rank] if len(rngs) == self.dist.world_size else rngs[0])
        logger.info("resumed at step %d from %s", self.state["step"], path)

    def save_checkpoint(self) -> None:
        self.events.flush()  # first: the event file then holds at least what the checkpoint does
        now = time.time()
        self.state["wall"] = self.state.get("wall", 0.0) + now - self._t_mark  # training time over all runs
        self._t_mark = now
        rngs = D.gather_objects(rng_state(), self.dist)
        if self.dist.is_master:
            save_checkpoint({"model": self.model.state_dict(), "unsup": self.unsup.state_dict(),
                             **folder.self_description(self.conf),
                             "pbgd": self.pbgd.state_dict(),
                             "schedulers": {k: s.state_dict() for k, s in self.scheds.items()},
                             "streams": {"lab": self.lab.state_dict(), "unlab": self.unlab.state_dict()},
                             "shadow": None if self.shadow is None else {"modules": self.shadow.state_dict(),
                                                                         "opt": self.shadow_opt.state_dict()},
                             "state": self.state, "rng": rngs}, self.out)

    # ---------------------------------------------------------------- loop
    def run(self) -> None:
        st, total = self.state, self.pcfg.total_steps
        valid_every = int(self.conf["bilevel"].get("valid_interval", 0)) or max(1, len(self.lab))
        save_every = int(self.tc.get("save_interval_steps", 0))
        log_every = max(1, int(self.tc.get("log_interval", 50)))
        max_steps = int(self.tc.get("max_steps", 0))
        stop = min(total, max_steps) if max_steps else total
        self.model.train()
        self.unsup.train()
        t0, start = time.time(), st["step"]
        while st["step"] < stop:
            step = st["step"]
            t_step = time.time()
            try:
                stats = self.pbgd.step(step)
            except NonFiniteLoss as e:
                st["bad_losses"] += 1
                for o in self.opts.values():
                    o.zero_grad(set_to_none=True)
                logger.warning("step %d: %s: step skipped [%d so far]", step, e, st["bad_losses"])
                if st["bad_losses"] > int(self.tc.get("max_bad_steps", 100)):
                    raise TooManyBadSteps(f"{st['bad_losses']} steps had non-finite losses") from e
                stats = None
            st["train_wall"] = st.get("train_wall", 0.0) + time.time() - t_step  # the steps alone
            st["step"] = step + 1
            if stats is not None and (step % log_every == 0 or step + 1 == total):
                self._log(step, stats, t0, start, total)
            if st["step"] % valid_every == 0 or st["step"] == total:
                self._validation_round()
            elif save_every and st["step"] % save_every == 0:
                self.save_checkpoint()
        if st["step"] < total:
            self.save_checkpoint()
            logger.info("stopped at trainer.max_steps=%d", max_steps)
            return
        if self.dist.is_master:
            self.finalize()
            self.write_summary()
        D.barrier(self.dist)

    def write_summary(self) -> None:
        """train_summary.yaml: what the comparison table reports for this run."""
        import yaml

        from bljust.utils.fileio import atomic_write

        c = self.pcfg
        summ = {"method": self.conf.get("method"), "unsup": self.conf["unsup"].get("name"),
                "label": self.conf.get("label") or os.path.basename(os.path.normpath(self.out)),
                "variant": self.conf.get("variant"),
                "phases": {"explore": c.n1, "joint": c.n2, "finetune": c.n3, "k": c.k,
                           "gamma_max": c.gamma_max, "reuse_lower_grad": c.reuse_lower_grad},
                "steps": self.state["step"], "passes_sup": self.pbgd.passes["sup"],
                "passes_unsup": self.pbgd.passes["unsup"],
                "wall_seconds": round(self.state.get("train_wall", 0.0), 1),  # the training steps alone
                "wall_seconds_with_validation": round(self.state["wall"], 1),
                "bad_steps": self.state["bad_losses"]}
        with atomic_write(os.path.join(self.out, "train_summary.yaml")) as f:
            yaml.safe_dump(summ, f, sort_keys=False)

    def _log(self, step: int, stats: Dict[str, float], t0: float, start: int, total: int) -> None:
        phase = ("explore", "joint", "finetune")[int(stats["phase"])]
        rate = (step + 1 - start) / max(1e-9, time.time() - t0)
        keys = [k for k in ("f", "g", "gamma", "penalty", "grad_f", "grad_g", "cos_fg", "cpc_acc", "bestrq_acc",
                                "laser")
                if k in stats]
        logger.info("step %d/%d [%s] %s | %.2f steps/s, passes sup %d unsup %d | ETA %s", step + 1, total, phase,
                    " ".join(f"{k} {stats[k]:.4g}" for k in keys), rate, self.pbgd.passes["sup"],
                    self.pbgd.passes["unsup"], humanfriendly.format_timespan((total - step - 1) / max(rate, 1e-9)))
        row = {"step": step + 1, "phase": phase, **{k: float(stats[k]) for k in keys}}
        self.state["log"].append(row)
        self.events.scalars(step + 1, row, "train/")
        if "f" in stats:
            self.state["curve"].append((step + 1, float(stats["f"])))

    def _validation_round(self) -> None:
        st = self.state
        r = st["round"]
        row: Dict[str, Any] = {"epoch": r, "step": st["step"], "train_loss": st["epoch_loss_sum"] / max(1, st["epoch_utts"]),
                               "passes_sup": self.pbgd.passes["sup"], "passes_unsup": self.pbgd.passes["unsup"]}
        # in the explore phase the CTC head is untrained: its CER says nothing, so do not spend time on it
        exploring = phase_of(self.pcfg, st["step"] - 1)[0] == "explore"
        if self.dist.is_master and self.valid_set is not None and not exploring:
            row.update(self.validate())
            self.model.train()
        self.record_round(row)
        st.update(round=r + 1, epoch_loss_sum=0.0, epoch_utts=0)
        if exploring:
            logger.info("round %d (step %d, explore phase): checkpoint only, no validation of the untrained "
                        "CTC head", r, st["step"])
        else:
            logger.info("validation %d (step %d): %s", r, st["step"],
                        ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "step")))
        self.save_round(r)

    def finalize(self) -> None:
        """Averages the best rounds among those after the last phase began (an explore-phase
        model has an untrained CTC head; a joint-phase one has not seen the fine-tuning)."""
        c, hist = self.pcfg, self.state["history"]
        last_start = c.n1 + c.n2 if c.n3 > 0 else (c.n1 if c.n2 > 0 else 0)
        self.state["history"] = [h for h in hist if h["step"] > last_start] or hist[-1:]
        try:
            super().finalize()
        finally:
            self.state["history"] = hist

    def plot(self) -> None:
        log, hist = self.state["log"], self.state["history"]
        img = os.path.join(self.out, "images")
        os.makedirs(img, exist_ok=True)

        def series(rows, key):
            return [(float(r["step"]), float(r[key])) for r in rows if key in r and math.isfinite(float(r[key]))]
        try:
            save_curves(os.path.join(img, "loss.png"), {"train f": series(log, "f"), "valid": series(hist, "valid_loss")},
                        "CTC loss", "step", "loss per utterance")
            if any("valid_cer" in h for h in hist):
                save_curves(os.path.join(img, "cer.png"), {"valid": series(hist, "valid_cer")},
                            "validation CER (greedy)", "step", "CER %")
            # f and g differ in scale by orders of magnitude: one panel each, on one step axis,
            # dashed lines where the joint and the fine-tuning phases begin
            c = self.pcfg
            xlim, bounds = (0.0, float(max(1, c.total_steps))), [float(c.n1), float(c.n1 + c.n2)]
            save_panels(os.path.join(img, "f_g.png"), [
                dict(series={"f (supervised)": series(log, "f")}, title="BL-JUST upper level f",
                     xlabel="step", ylabel="CTC loss", xlim=xlim, vlines=bounds),
                dict(series={"g (unsupervised)": series(log, "g")}, title="BL-JUST lower level g",
                     xlabel="step", ylabel=f"{self.conf['unsup'].get('name', 'g')} loss", xlim=xlim, vlines=bounds)])
            if any("gamma" in r for r in log):
                save_curves(os.path.join(img, "gamma_penalty.png"), {"gamma": series(log, "gamma"),
                                                                     "g - v_hat": series(log, "penalty")},
                            "penalty weight and penalty estimate", "step", "value")
        except Exception as e:  # a plotting bug must never stop training
            logger.warning("could not write curves: %s", e)
