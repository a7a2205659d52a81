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


@pytest.mark.parametrize("name", ["warmuplr", "cosine"])
def test_warm_restarts_start_the_schedule_again(name):
    f = lr_lambda({"name": name, "warmup_steps": 10, "restarts": [0.4]}, total_steps=100)
    one = lr_lambda({"name": name, "warmup_steps": 10}, total_steps=40)
    two = lr_lambda({"name": name, "warmup_steps": 10}, total_steps=60)
    assert [f(s) for s in range(40)] == [one(s) for s in range(40)]
    assert [f(s) for s in range(40, 100)] == [two(s) for s in range(60)]
    assert f(39) < 0.8 and f(49) == pytest.approx(1.0)  # decayed, then back at the peak after a new warm-up
    with pytest.raises(ValueError, match="restarts must be increasing fractions"):
        lr_lambda({"name": name, "warmup_steps": 10, "restarts": [0.5, 0.3]}, 100)
    with pytest.raises(ValueError, match="restarts"):
        lr_lambda({"name": "constant", "restarts": [0.5]}, 100)
