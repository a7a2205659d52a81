"""BL-JUST as a method of the training core (loop.py): two batch streams and the PBGD schedule.

The update rules live in bilevel.py; this module feeds them (a labeled and an
unlabeled stream that cycle independently, each with its own epoch and position),
logs f, g, γ, the penalty estimate and the gradient norms and cosine (docs/bljust.md,
"What is logged"), validates every `valid_interval` steps, and hands the loop
everything a resumed run needs (both streams, the three optimisers and their
schedules, v̂). The loop, checkpoints, keep-best and averaging are the core's.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn

from bljust.data.batching import epoch_order, make_batches, shard
from bljust.data.dataset import ASRDataset, collate
from bljust.nets.asr_model import ASRModel
from bljust.train import distributed as D
from bljust.train.bilevel import PBGD, NonFiniteLoss, PBGDConfig, ParamGroups, phase_of
from bljust.train.base import ASRMethod, autocast
from bljust.train.loop import LoopOptions, TrainingLoop
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


class BilevelMethod(ASRMethod):
    """BL-JUST: the PBGD rule of bilevel.py fed by a labeled and an unlabeled stream; a round is
    `bilevel.valid_interval` steps (default: a labeled epoch)."""

    name = "BL-JUST"

    def __init__(self, config: Dict[str, Any], model: ASRModel, train_set: ASRDataset, unlab_set: Any,
                 valid_set: Optional[ASRDataset], tokenizer: Any, dist: D.DistInfo, device: torch.device) -> None:
        super().__init__(config, model, train_set, valid_set, tokenizer, dist, device)
        # the log names what runs: a comparison row driven by this trainer (supervised only, the
        # schedule control, PT+FT, multitask) is not BL-JUST
        self.name = str(config.get("label") or self.name)
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
        self.sums = {"loss": 0.0, "utts": 0}  # the round's supervised loss
        self.valid_every = int(bc.get("valid_interval", 0)) or max(1, len(self.lab))
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
        self.sums["loss"] += float(loss.detach()) * b["feats"].size(0)
        self.sums["utts"] += b["feats"].size(0)
        return loss * w, stats

    def _g(self) -> Tuple[torch.Tensor, Dict[str, float]]:
        b, w = self._batch(self.unlab)
        with autocast(self.device, self.amp):
            loss, stats = self.unsup(self.model, b["feats"], b["feat_lens"])
        if D.any_true(not bool(torch.isfinite(loss)), self.dist, self.device):
            raise NonFiniteLoss(f"unsupervised loss {float(loss)} on {b['keys'][:3]}...")
        self._last_unlab = b
        return loss * w, stats

    # ---------------------------------------------------------------- the loop's hooks
    def options(self) -> LoopOptions:
        return self.loop_options(self.pcfg.total_steps)

    def state_dict(self) -> Dict[str, Any]:
        return {"model": self.model.state_dict(), "unsup": self.unsup.state_dict(), "pbgd": self.pbgd.state_dict(),
                "schedulers": {k: s.state_dict() for k, s in self.scheds.items()},
                "streams": {"lab": self.lab.state_dict(), "unlab": self.unlab.state_dict()},
                "shadow": None if self.shadow is None else {"modules": self.shadow.state_dict(),
                                                            "opt": self.shadow_opt.state_dict()},
                "sums": dict(self.sums)}

    def load_state_dict(self, st: Dict[str, Any]) -> None:
        self.model.load_state_dict(st["model"])
        self.unsup.load_state_dict(st["unsup"])
        self.pbgd.load_state_dict(st["pbgd"])
        for name, s in self.scheds.items():
            s.load_state_dict(st["schedulers"][name])
        if self.shadow is not None:
            self.shadow.load_state_dict(st["shadow"]["modules"])
            self.shadow_opt.load_state_dict(st["shadow"]["opt"])
        self.lab.load_state_dict(st["streams"]["lab"])
        self.unlab.load_state_dict(st["streams"]["unlab"])
        self.sums = dict(st["sums"])

    def train_step(self, loop: TrainingLoop) -> Optional[Dict[str, Any]]:
        if not (self.model.training and self.unsup.training):
            self.model.train()
            self.unsup.train()
        try:
            stats = self.pbgd.step(loop.step)
        except NonFiniteLoss as e:
            for o in self.opts.values():
                o.zero_grad(set_to_none=True)
            logger.warning("step %d: %s: step skipped", loop.step + 1, e)
            return None
        keys = ("f", "g", "gamma", "penalty", "grad_f", "grad_g", "cos_fg", "cpc_acc", "bestrq_acc", "laser")
        return {k: float(stats[k]) for k in keys if k in stats}

    def log_tag(self, step: int) -> str:
        return (f"[{phase_of(self.pcfg, step - 1)[0]}] passes sup {self.pbgd.passes['sup']} "
                f"unsup {self.pbgd.passes['unsup']}")

    def round_due(self, step: int) -> bool:
        return step % self.valid_every == 0 or step == self.pcfg.total_steps

    def end_round(self, loop: TrainingLoop) -> Dict[str, Any]:
        step = loop.step
        row: Dict[str, Any] = {"train_loss": self.sums["loss"] / max(1, self.sums["utts"]),
                               "passes_sup": self.pbgd.passes["sup"], "passes_unsup": self.pbgd.passes["unsup"]}
        # in the explore phase the CTC head is untrained: its CER says nothing, so do not spend time on it
        exploring = phase_of(self.pcfg, step - 1)[0] == "explore"
        if self.dist.is_master and self.valid_set is not None and not exploring:
            row.update(self.validate())
            self.model.train()
        self.sums = {"loss": 0.0, "utts": 0}
        r = loop.state["round"]
        if exploring:
            logger.info("round %d (step %d, explore phase): checkpoint only, no validation of the untrained "
                        "CTC head", r, step)
        else:
            logger.info("validation %d (step %d): %s", r, step, ", ".join(f"{k} {v:.4g}" for k, v in row.items()))
        return row

    def rounds_to_average(self, history: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """The rounds after the last phase began (an explore-phase model has an untrained CTC
        head; a joint-phase one has not seen the fine-tuning)."""
        c = self.pcfg
        last_start = c.n1 + c.n2 if c.n3 > 0 else (c.n1 if c.n2 > 0 else 0)
        return [h for h in history if h["step"] > last_start] or history[-1:]

    def finish(self, loop: TrainingLoop, done: bool) -> None:
        if done:
            self.write_summary(loop)

    def write_summary(self, loop: TrainingLoop) -> None:
        """train_summary.yaml: what the comparison table reports for this run."""
        import yaml

        from bljust.utils.fileio import atomic_write

        c = self.pcfg
        summ = {"method": self.conf.get("method"), "unsup": self.conf["unsup"].get("name"),
                "label": self.conf.get("label") or os.path.basename(os.path.normpath(self.out)),
                "variant": self.conf.get("variant"),
                "phases": {"explore": c.n1, "joint": c.n2, "finetune": c.n3, "k": c.k,
                           "gamma_max": c.gamma_max, "reuse_lower_grad": c.reuse_lower_grad},
                "steps": loop.step, "passes_sup": self.pbgd.passes["sup"],
                "passes_unsup": self.pbgd.passes["unsup"],
                "wall_seconds": round(loop.state["train_wall"], 1),  # the training steps alone
                "wall_seconds_with_validation": round(loop.state["wall"], 1),
                "bad_steps": loop.state["bad_steps"]}
        with atomic_write(os.path.join(self.out, "train_summary.yaml")) as f:
            yaml.safe_dump(summ, f, sort_keys=False)

    def plot(self, loop: TrainingLoop) -> None:
        self.plot_loss_and_cer(loop, {"train f": loop.series("f")})
        # f and g differ in scale by orders of magnitude: one panel each, on one step axis,
        # dashed lines where the joint and the fine-tuning phases begin
        c, img = self.pcfg, os.path.join(self.out, "images")
        xlim, bounds = (0.0, float(max(1, c.total_steps))), [float(c.n1), float(c.n1 + c.n2)]
        save_panels(os.path.join(img, "f_g.png"), [
            dict(series={"f (supervised)": loop.series("f")}, title="BL-JUST upper level f",
                 xlabel="step", ylabel="CTC loss", xlim=xlim, vlines=bounds),
            dict(series={"g (unsupervised)": loop.series("g")}, title="BL-JUST lower level g",
                 xlabel="step", ylabel=f"{self.conf['unsup'].get('name', 'g')} loss", xlim=xlim, vlines=bounds)])
        if loop.series("gamma"):
            save_curves(os.path.join(img, "gamma_penalty.png"), {"gamma": loop.series("gamma"),
                                                                 "g - v_hat": loop.series("penalty")},
                        "penalty weight and penalty estimate", "step", "value")
