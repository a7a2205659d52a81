"""Warm-up schedules peak at the configured lr after warmup_steps and then decay."""
import pytest
import torch

from bljust.train.schedulers import build_optimizer, build_scheduler, lr_lambda


@pytest.mark.parametrize("name", ["warmuplr", "noam", "linear", "cosine"])
def test_peak_after_warmup_then_decay(name):
    f = lr_lambda({"name": name, "warmup_steps": 10}, total_steps=100)
    ramp = [f(s) for s in range(10)]
    assert ramp == sorted(ramp) and ramp[0] == pytest.approx(0.1) and ramp[-1] == pytest.approx(1.0)
    tail = [f(s) for s in range(10, 100)]
    assert tail == sorted(tail, reverse=True) and tail[-1] < 0.5
    if name in ("linear", "cosine"):
        assert f(99) == pytest.approx(0.0, abs=1e-9)


def test_scheduler_drives_optimizer_and_unknown_names_fail():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], {"name": "adam", "lr": 1e-3})
    sch = build_scheduler(opt, {"name": "warmuplr", "warmup_steps": 4}, 100)
    for _ in range(3):
        opt.step()
        sch.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="scheduler.name: expected one of warmuplr"):
        lr_lambda({"name": "exotic"}, 10)
    with pytest.raises(ValueError, match="optim.name: expected one of adam, adamw, sgd, got 'lion'"):
        build_optimizer([p], {"name": "lion"})
