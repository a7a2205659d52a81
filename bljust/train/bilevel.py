"""Penalty-based bilevel gradient descent (PBGD) for BL-JUST: the three phases.

Parameters: shared encoder θ, supervised head φ, unsupervised head η.
f(θ, φ) is the supervised loss on a labeled batch, g(θ, η) the unsupervised loss on
an unlabeled batch. The penalised problem min f + γ·(g − v*) gives the update
direction ∇f + γ∇g. Phases (docs/bljust.md explains them and the settings):

1. explore,  N1 steps: (θ, η) ← opt_ll(∇g)
2. joint,    N2 steps: K lower-level steps (θ, η) ← opt_ll(∇g) on fresh unlabeled
             batches, then one upper-level step (θ, φ, η) ← opt_ul(s_t·∇[f + γ_t g]),
             s_t = min(1, 1/γ_t) when `normalize` is on
3. finetune, N3 steps: (θ, φ) ← opt_ft(∇f)

The baselines are settings of the same class: supervised only (N1 = N2 = 0),
PT+FT (N2 = 0), multitask (K = 0, constant γ, no normalisation), and the schedule
control (`lower_level=False`: K = 0 and γ = 0, so no g is ever evaluated; the joint
phase is N2 plain f steps with opt_ul and its schedule, then N3 fine-tuning steps with
opt_ft, whose schedule restarts: BL-JUST's supervised steps and learning-rate restarts
without its lower level). A joint step with K = 0 and γ = 0 evaluates no g in any case.

This module holds the update rules and nothing else: the caller supplies the two
loss closures (each draws its own next batch), the optimisers, and the loop.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

LossFn = Callable[[], Tuple[torch.Tensor, Dict[str, float]]]


class NonFiniteLoss(RuntimeError):
    """A loss or gradient that is NaN or inf: the step is skipped (and counted) by the caller."""

PHASES = ("explore", "joint", "finetune")
GAMMA_SCHEDULES = ("linear", "constant", "cosine")
PENALTY_REFS = ("running_min", "shadow")


@dataclass
class PBGDConfig:
    n1: int = 0                      # explore steps
    n2: int = 0                      # joint steps
    n3: int = 0                      # fine-tune steps
    k: int = 1                       # lower-level steps per joint step
    gamma0: float = 0.1              # penalty weight at the start of the joint phase
    gamma_max: float = 1.0           # ... and at its end
    gamma_schedule: str = "linear"   # linear, constant (gamma_max throughout) or cosine
    normalize: bool = True           # scale the upper-level direction by min(1, 1/γ)
    reuse_lower_grad: bool = False   # upper level reuses the last lower-level ∇g (one g pass fewer)
    penalty_ref: str = "running_min"  # v̂ for the logged penalty g − v̂: running_min or shadow
    lower_level: bool = True         # False: the schedule control (no explore phase, K = 0, γ = 0)
    grad_clip: float = 5.0

    def __post_init__(self) -> None:
        if min(self.n1, self.n2, self.n3, self.k) < 0:
            raise ValueError("n1, n2, n3 and k must be >= 0")
        if not self.lower_level:
            if self.k != 0 or self.gamma0 != 0 or self.gamma_max != 0:
                raise ValueError("lower_level: false (the schedule control) needs k: 0, gamma0: 0 and gamma_max: 0, "
                                 f"got k={self.k}, gamma0={self.gamma0}, gamma_max={self.gamma_max}")
            # the explore phase has no supervised step: the control drops it and keeps the
            # joint and fine-tune lengths, so its supervised steps are BL-JUST's
            self.n1 = 0
        if self.gamma_schedule not in GAMMA_SCHEDULES:
            raise ValueError(f"gamma_schedule must be linear, constant or cosine, not {self.gamma_schedule!r}")
        if self.penalty_ref not in PENALTY_REFS:
            raise ValueError(f"penalty_ref must be running_min or shadow, not {self.penalty_ref!r}")

    @property
    def total_steps(self) -> int:
        return self.n1 + self.n2 + self.n3


@dataclass
class ParamGroups:
    theta: List[nn.Parameter]
    phi: List[nn.Parameter]
    eta: List[nn.Parameter]
    # (shadow module, step): step() trains the shadow copy of (θ, η) on the last
    # unlabeled batch and returns its g there, the reference v̂ for the penalty
    shadow: Optional[Tuple[nn.Module, Callable[[], float]]] = field(default=None)

    def lower(self) -> List[nn.Parameter]:
        return self.theta + self.eta

    def upper(self) -> List[nn.Parameter]:
        return self.theta + self.phi + self.eta

    def finetune(self) -> List[nn.Parameter]:
        return self.theta + self.phi


def gamma_at(cfg: PBGDConfig, t: int) -> float:
    """Penalty weight at joint step t (0-based) of cfg.n2."""
    if cfg.gamma_schedule == "constant" or cfg.n2 <= 1:
        return cfg.gamma_max
    frac = t / (cfg.n2 - 1)
    if cfg.gamma_schedule == "linear":
        return cfg.gamma0 + (cfg.gamma_max - cfg.gamma0) * frac
    return cfg.gamma_max + (cfg.gamma0 - cfg.gamma_max) * 0.5 * (1.0 + math.cos(math.pi * frac))


def phase_of(cfg: PBGDConfig, step: int) -> Tuple[str, int]:
    """(phase name, step within the phase) for global step `step` (0-based)."""
    if step < cfg.n1:
        return "explore", step
    if step < cfg.n1 + cfg.n2:
        return "joint", step - cfg.n1
    return "finetune", step - cfg.n1 - cfg.n2


def _grads(loss: torch.Tensor, params: Sequence[nn.Parameter]) -> List[torch.Tensor]:
    gs = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, gs)]


def _flat(gs: Sequence[torch.Tensor]) -> torch.Tensor:
    """All of `gs` as one float32 vector: one copy kernel instead of a few per tensor."""
    return torch.cat([g.reshape(-1).float() for g in gs]) if gs else torch.zeros(1)


def _norm(gs: Sequence[torch.Tensor]) -> torch.Tensor:
    if not gs:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm([g.float() for g in gs])))


class PBGD:
    """One call of `step()` is one update of the schedule; state_dict() resumes it exactly."""

    def __init__(self, cfg: PBGDConfig, groups: ParamGroups, f: LossFn, g: LossFn,
                 opt_ll: torch.optim.Optimizer, opt_ul: torch.optim.Optimizer,
                 opt_ft: torch.optim.Optimizer,
                 on_step: Optional[Callable[[torch.optim.Optimizer], None]] = None,
                 reduce_grads: Optional[Callable[[List[torch.Tensor]], List[torch.Tensor]]] = None) -> None:
        """on_step(opt) runs after each optimiser step (learning-rate schedules);
        reduce_grads sums gradients over data-parallel ranks before each step."""
        self.cfg, self.groups, self.f, self.g = cfg, groups, f, g
        self.on_step, self.reduce_grads = on_step, reduce_grads
        self.opt_ll, self.opt_ul, self.opt_ft = opt_ll, opt_ul, opt_ft
        self.v_hat = math.inf
        self.passes = {"sup": 0, "unsup": 0}  # encoder forward/backward passes, for fair comparisons

    # ------------------------------------------------------------------ pieces
    def _apply(self, opt: torch.optim.Optimizer, params: Sequence[nn.Parameter],
               grads: Sequence[torch.Tensor], owned: bool = False) -> float:
        """Steps `opt` along `grads`; owned=True hands the tensors over (no copy)."""
        if self.reduce_grads is not None:
            grads = self.reduce_grads(list(grads))
        if not owned:
            # a copy: clipping works in place, and the caller may reuse `grads` (reuse_lower_grad);
            # one multi-tensor kernel rather than one copy per tensor
            grads = torch._foreach_mul([g.detach() for g in grads], 1.0)
        for p, gr in zip(params, grads):
            p.grad = gr if gr.dtype == p.dtype else gr.to(p.dtype)
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        if not math.isfinite(norm):
            opt.zero_grad(set_to_none=True)
            raise NonFiniteLoss(f"gradient norm {norm}")
        opt.step()
        opt.zero_grad(set_to_none=True)
        if self.on_step is not None:
            self.on_step(opt)
        return norm

    def _eval_g(self) -> Tuple[torch.Tensor, Dict[str, float]]:
        self.passes["unsup"] += 1
        return self.g()

    def _eval_f(self) -> Tuple[torch.Tensor, Dict[str, float]]:
        self.passes["sup"] += 1
        return self.f()

    def _track(self, g_value: float) -> float:
        """Penalty estimate g − v̂ with v̂ the best g seen so far, or the g of a shadow copy of
        (θ, η) that is trained on the lower level alone (penalty_ref: shadow)."""
        if self.cfg.penalty_ref == "shadow":
            if self.groups.shadow is None:
                raise ValueError("penalty_ref: shadow needs ParamGroups.shadow (a shadow copy and its step)")
            _, shadow_step = self.groups.shadow
            ref = float(shadow_step())
        else:
            self.v_hat = min(self.v_hat, g_value)
            ref = self.v_hat
        return g_value - ref

    def lower_step(self) -> Tuple[torch.Tensor, List[torch.Tensor], Dict[str, float]]:
        params = self.groups.lower()
        g, stats = self._eval_g()
        gg = _grads(g, params)
        self._apply(self.opt_ll, params, gg)
        return g.detach(), gg, stats

    # ------------------------------------------------------------------ phases
    def step(self, step: int) -> Dict[str, float]:
        phase, t = phase_of(self.cfg, step)
        n_theta = len(self.groups.theta)
        out: Dict[str, float] = {"phase": float(PHASES.index(phase))}
        # Logged values stay on the device until one transfer at the end: every
        # float() of a CUDA tensor would stall the queue of kernels.
        if phase == "explore":
            g_val, gg, stats = self.lower_step()
            g_val, grad_g = torch.stack([g_val.float(), _norm(gg[:n_theta])]).tolist()
            out.update(stats, g=g_val, grad_g=grad_g, penalty=self._track(g_val))
            return out
        if phase == "finetune":
            params = self.groups.finetune()
            f, stats = self._eval_f()
            gf = _grads(f, params)
            grad_f = _norm(gf[:n_theta])
            self._apply(self.opt_ft, params, gf, owned=True)
            f_val, grad_f = torch.stack([f.detach().float(), grad_f]).tolist()
            out.update(stats, f=f_val, grad_f=grad_f)
            return out

        gamma = gamma_at(self.cfg, t)
        if self.cfg.k == 0 and gamma == 0:
            return self._f_step(out, gamma)
        last_gg: Optional[List[torch.Tensor]] = None
        g_val: Optional[torch.Tensor] = None
        for _ in range(self.cfg.k):
            g_val, last_gg, _ = self.lower_step()
        params = self.groups.upper()
        f, stats = self._eval_f()
        gf = _grads(f, self.groups.theta + self.groups.phi)
        if self.cfg.reuse_lower_grad and last_gg is not None:
            gg = last_gg  # ∇g on (θ, η) from the last lower-level step
        else:
            g, gstats = self._eval_g()
            stats.update(gstats)
            g_val = g.detach()
            gg = _grads(g, self.groups.lower())
        scale = min(1.0, 1.0 / gamma) if self.cfg.normalize and gamma > 0 else 1.0
        gf_theta, gf_phi = gf[:n_theta], gf[n_theta:]
        gg_theta, gg_eta = gg[:n_theta], gg[n_theta:]
        # statistics before the step: clipping scales the direction in place
        vf, vg = _flat(gf_theta), _flat(gg_theta)
        nf, ng, dot = torch.linalg.vector_norm(vf), torch.linalg.vector_norm(vg), torch.dot(vf, vg)
        del vf, vg
        # scale·(∇f + γ∇g) on θ, scale·∇f on φ, scale·γ∇g on η: multi-tensor kernels
        d_theta = torch._foreach_add(gf_theta, gg_theta, alpha=gamma) if n_theta else []
        if d_theta:
            torch._foreach_mul_(d_theta, scale)
        d_phi = torch._foreach_mul(gf_phi, scale) if gf_phi else []
        d_eta = torch._foreach_mul(gg_eta, scale * gamma) if gg_eta else []
        self._apply(self.opt_ul, params, list(d_theta) + list(d_phi) + list(d_eta), owned=True)
        nan = torch.tensor(math.nan, device=nf.device)
        f_val, g_val, nf, ng, dot = torch.stack([f.detach().float(), nan if g_val is None else g_val.float(),
                                                 nf, ng, dot]).tolist()
        cos = dot / (nf * ng) if nf > 0 and ng > 0 else 0.0
        out.update(stats, f=f_val, g=g_val, gamma=gamma, penalty=self._track(g_val),
                   grad_f=nf, grad_g=ng, cos_fg=cos)
        return out

    def _f_step(self, out: Dict[str, float], gamma: float) -> Dict[str, float]:
        """A joint step with K = 0 and γ = 0: the penalised direction is ∇f alone, so g is
        not evaluated (no unsupervised pass) and η is left alone; the step is opt_ul's."""
        params = self.groups.theta + self.groups.phi
        f, stats = self._eval_f()
        gf = _grads(f, params)
        grad_f = _norm(gf[:len(self.groups.theta)])
        self._apply(self.opt_ul, params, gf, owned=True)
        f_val, grad_f = torch.stack([f.detach().float(), grad_f]).tolist()
        out.update(stats, f=f_val, gamma=gamma, grad_f=grad_f)
        return out

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> Dict:
        return {"cfg": asdict(self.cfg), "v_hat": self.v_hat, "passes": dict(self.passes),
                "opt_ll": self.opt_ll.state_dict(), "opt_ul": self.opt_ul.state_dict(),
                "opt_ft": self.opt_ft.state_dict()}

    def load_state_dict(self, state: Dict) -> None:
        self.v_hat = state["v_hat"]
        self.passes = dict(state["passes"])
        self.opt_ll.load_state_dict(state["opt_ll"])
        self.opt_ul.load_state_dict(state["opt_ul"])
        self.opt_ft.load_state_dict(state["opt_ft"])
