"""Supervised training killed with SIGKILL mid-epoch and resumed ends bit-identical to an
uninterrupted run, and its TensorBoard curves join up (test_sigkill_every_method.py checks
the same resume for all five methods)."""
import os

import torch

from train_synth import make_data_dir, run_and_kill, run_driver as _run, tiny_config

from bljust.utils.events import read_scalars


def test_sigkill_resume_is_bit_identical(tmp_path):
    tmp = str(tmp_path)
    make_data_dir(f"{tmp}/train", 24)
    make_data_dir(f"{tmp}/dev", 6, seed=1)
    # dropout and SpecAugment on: the RNG streams must be restored too
    ref_conf = tiny_config(tmp, f"{tmp}/ref", max_epoch=3, save_interval_steps=3, accum_grad=1)
    ref = _run(ref_conf, tmp, "ref")

    conf = dict(ref_conf, output_dir=f"{tmp}/killed")
    ckpt = f"{tmp}/killed/checkpoint.pth"
    run_and_kill(conf, tmp, "killed", ckpt)  # during the pause after the first mid-epoch checkpoint
    state = torch.load(ckpt, weights_only=True)["loop"]
    assert state["round"] == 1 and state["step"] == 3  # mid-epoch: 6 steps per epoch

    out, _ = ref.communicate(timeout=180)
    assert ref.returncode == 0, out
    res = _run(conf, tmp, "killed")
    out, _ = res.communicate(timeout=180)
    assert res.returncode == 0, out
    assert "resumed at step" in out

    a = torch.load(f"{tmp}/ref/checkpoint.pth", weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert a["loop"]["step"] == b["loop"]["step"] == 12
    assert a["method"]["model"].keys() == b["method"]["model"].keys()
    for k in a["method"]["model"]:
        assert torch.equal(a["method"]["model"][k], b["method"]["model"][k]), k
    for k in ("train_loss", "valid_loss", "valid_cer"):
        assert [h[k] for h in a["loop"]["history"]] == [h[k] for h in b["loop"]["history"]]
    # TensorBoard: the killed run's events up to its checkpoint and the resumed run's after it
    # join into the uninterrupted run's curve (nothing lost, nothing twice)
    ta, tb = read_scalars(f"{tmp}/ref"), read_scalars(f"{tmp}/killed")
    for tag in ("train/loss", "round/valid_loss"):
        assert [s for s, _ in tb[tag]] == [s for s, _ in ta[tag]], tag
    # the finished run's outputs
    for f in ("model.pth", "valid.loss.best.pth", "valid.cer.ave_2best.pth", "config.yaml", "3epoch.pth"):
        assert os.path.exists(f"{tmp}/killed/{f}"), f
    assert torch.equal(torch.load(f"{tmp}/killed/model.pth", weights_only=True)["ctc_head.weight"],
                       torch.load(f"{tmp}/ref/model.pth", weights_only=True)["ctc_head.weight"])
