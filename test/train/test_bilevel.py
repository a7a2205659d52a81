"""PBGD: converges to a known bilevel solution, and each phase moves the right parameters."""
import math

import pytest
import torch
from torch import nn

from bljust.train.bilevel import PBGD, PBGDConfig, ParamGroups, gamma_at, phase_of


class Toy(nn.Module):
    """f = ½(θ1−1)² + ½(θ2−2)² + ½(φ−θ2)²,  g = ½(θ1−3)² + ½(η−θ2)².

    argmin g = {θ1 = 3, η = θ2}; the bilevel solution is θ = (3, 2), φ = 2, η = 2.
    A fixed-weight sum f + c·g stops at θ1 = (1 + 3c) / (1 + c) instead.
    """

    def __init__(self):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([0.0, 1.0], dtype=torch.float64))
        self.phi = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.eta = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def f(self):
        t = self.theta
        return 0.5 * (t[0] - 1) ** 2 + 0.5 * (t[1] - 2) ** 2 + 0.5 * (self.phi - t[1]) ** 2, {}

    def g(self):
        t = self.theta
        return 0.5 * (t[0] - 3) ** 2 + 0.5 * (self.eta - t[1]) ** 2, {}


def make(cfg, lr=0.1):
    m = Toy()
    groups = ParamGroups(theta=[m.theta], phi=[m.phi], eta=[m.eta])
    opts = [torch.optim.SGD(ps, lr=lr) for ps in (groups.lower(), groups.upper(), groups.finetune())]
    return m, PBGD(cfg, groups, m.f, m.g, *opts)


def run(cfg, lr=0.1):
    m, algo = make(cfg, lr)
    for s in range(cfg.total_steps):
        algo.step(s)
    return m


def solution_error(m):
    t, phi, eta = m.theta.detach(), float(m.phi.detach()), float(m.eta.detach())
    return max(abs(float(t[0]) - 3), abs(float(t[1]) - 2), abs(phi - 2), abs(eta - 2))


def test_pbgd_converges_to_the_bilevel_solution():
    cfg = PBGDConfig(n1=100, n2=3000, n3=0, k=1, gamma0=0.1, gamma_max=100.0, grad_clip=0)
    assert solution_error(run(cfg)) < 0.02


def test_the_fixed_weight_sum_does_not():
    cfg = PBGDConfig(n1=0, n2=3000, n3=0, k=0, gamma_schedule="constant", gamma_max=1.0,
                     normalize=False, grad_clip=0)
    m = run(cfg)
    assert abs(float(m.theta.detach()[0]) - 2.0) < 0.01   # (1 + 3c) / (1 + c) with c = 1
    assert solution_error(m) > 0.5


def test_reusing_the_lower_gradient_also_converges():
    cfg = PBGDConfig(n1=100, n2=3000, k=1, gamma0=0.1, gamma_max=100.0, reuse_lower_grad=True, grad_clip=0)
    assert solution_error(run(cfg)) < 0.03


def test_phases_move_only_their_parameters():
    cfg = PBGDConfig(n1=5, n2=5, n3=5, k=1, grad_clip=0)
    m, algo = make(cfg)
    snap = lambda: (m.theta.detach().clone(), float(m.phi.detach()), float(m.eta.detach()))  # noqa: E731
    before = snap()
    for s in range(5):
        assert algo.step(s)["phase"] == 0
    after = snap()
    assert after[1] == before[1], "φ must not move in the explore phase"
    assert after[2] != before[2] and not torch.equal(after[0], before[0])
    for s in range(5, 10):
        algo.step(s)
    mid = snap()
    assert mid[1] != after[1] and mid[2] != after[2]
    for s in range(10, 15):
        assert algo.step(s)["phase"] == 2
    end = snap()
    assert end[2] == mid[2], "η must not move in the fine-tune phase"
    assert end[1] != mid[1] and not torch.equal(end[0], mid[0])


def test_pass_counts_and_logged_quantities():
    cfg = PBGDConfig(n1=2, n2=3, n3=1, k=2, grad_clip=0)
    _, algo = make(cfg)
    logs = [algo.step(s) for s in range(cfg.total_steps)]
    # explore: 1 g each; joint: k + 1 g and 1 f each; finetune: 1 f
    assert algo.passes == {"unsup": 2 + 3 * 3, "sup": 3 + 1}
    joint = logs[2]
    for key in ("f", "g", "gamma", "penalty", "grad_f", "grad_g", "cos_fg"):
        assert key in joint and math.isfinite(joint[key])
    assert -1.0 <= joint["cos_fg"] <= 1.0


def test_gamma_schedules_and_phase_boundaries():
    lin = PBGDConfig(n2=11, gamma0=0.0, gamma_max=10.0)
    assert [gamma_at(lin, t) for t in (0, 5, 10)] == pytest.approx([0.0, 5.0, 10.0])
    cos = PBGDConfig(n2=11, gamma0=0.0, gamma_max=10.0, gamma_schedule="cosine")
    assert gamma_at(cos, 0) == pytest.approx(0.0) and gamma_at(cos, 10) == pytest.approx(10.0)
    assert gamma_at(cos, 5) == pytest.approx(5.0)
    const = PBGDConfig(n2=11, gamma0=0.0, gamma_max=3.0, gamma_schedule="constant")
    assert gamma_at(const, 0) == 3.0
    c = PBGDConfig(n1=2, n2=3, n3=4)
    assert [phase_of(c, s)[0] for s in (0, 1, 2, 4, 5, 8)] == \
        ["explore", "explore", "joint", "joint", "finetune", "finetune"]


def make_adam(cfg):
    """Stateful optimisers (Adam moments): a resume that loses them takes other steps."""
    m = Toy()
    groups = ParamGroups(theta=[m.theta], phi=[m.phi], eta=[m.eta])
    opts = [torch.optim.Adam(ps, lr=0.05) for ps in (groups.lower(), groups.upper(), groups.finetune())]
    return m, PBGD(cfg, groups, m.f, m.g, *opts)


def test_state_dict_resumes_exactly():
    cfg = PBGDConfig(n1=3, n2=10, n3=3, k=1, grad_clip=0)
    full, a = make_adam(cfg)
    for s in range(cfg.total_steps):
        a.step(s)
    part, b = make_adam(cfg)
    for s in range(7):  # stops inside the joint phase: Adam moments, v̂ and pass counts all matter
        b.step(s)
    state = b.state_dict()
    params = {k: v.detach().clone() for k, v in part.state_dict().items()}
    resumed, c = make_adam(cfg)
    for s in range(5):  # a resumed process must overwrite whatever state it built up, not merge with it
        c.step(s)
    resumed.load_state_dict(params)
    c.load_state_dict(state)
    assert c.passes == b.passes and c.v_hat == b.v_hat
    for s in range(7, cfg.total_steps):
        c.step(s)
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert c.passes == a.passes


def test_a_non_finite_gradient_is_refused_and_leaves_the_parameters_alone():
    from bljust.train.bilevel import NonFiniteLoss

    cfg = PBGDConfig(n1=2, grad_clip=5.0)
    m, algo = make(cfg)
    before = m.theta.detach().clone()
    m.g = lambda: ((m.theta * float("inf")).sum(), {})  # finite nowhere: inf * θ
    algo.g = m.g
    with pytest.raises(NonFiniteLoss):
        algo.step(0)
    assert torch.equal(m.theta.detach(), before)


def test_the_schedule_control_evaluates_no_g_and_keeps_the_supervised_schedule():
    cfg = PBGDConfig(n1=7, n2=10, n3=5, k=0, gamma0=0.0, gamma_max=0.0, lower_level=False, grad_clip=0)
    assert (cfg.n1, cfg.total_steps) == (0, 15)  # no explore phase: it has no supervised step
    m, algo = make(cfg)
    calls = {"g": 0}
    g = algo.g

    def counted_g():
        calls["g"] += 1
        return g()
    algo.g = counted_g
    stepped = []
    algo.on_step = stepped.append
    eta = float(m.eta.detach())
    for s in range(cfg.total_steps):
        out = algo.step(s)
        assert "g" not in out and "f" in out
    assert calls["g"] == 0 and algo.passes == {"sup": 15, "unsup": 0}
    assert float(m.eta.detach()) == eta  # the lower-level head is not touched
    # joint steps are the upper-level optimiser's, then the fine-tuning one's (its schedule restarts)
    assert stepped == [algo.opt_ul] * 10 + [algo.opt_ft] * 5
    with pytest.raises(ValueError, match="lower_level: false"):
        PBGDConfig(n2=10, k=1, gamma0=0.0, gamma_max=0.0, lower_level=False)
    with pytest.raises(ValueError, match="lower_level: false"):
        PBGDConfig(n2=10, k=0, gamma0=0.0, gamma_max=1.0, lower_level=False)


def test_a_joint_step_with_no_lower_steps_and_zero_gamma_evaluates_no_g():
    # multitask with gamma ramping from 0: only its first joint step has gamma 0
    cfg = PBGDConfig(n2=3, k=0, gamma0=0.0, gamma_max=1.0, grad_clip=0)
    _, algo = make(cfg)
    algo.step(0)
    assert algo.passes == {"sup": 1, "unsup": 0}
    algo.step(1)
    assert algo.passes == {"sup": 2, "unsup": 1}
