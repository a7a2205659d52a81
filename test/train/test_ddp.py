"""Data parallel on CPU (gloo, 2 processes) matches one process on the same global batches."""
import os

import torch

from train_synth import make_data_dir, run_driver as _run, tiny_config


def test_two_gloo_ranks_match_one_process(tmp_path):
    tmp = str(tmp_path)
    make_data_dir(f"{tmp}/train", 24)
    make_data_dir(f"{tmp}/dev", 4, seed=1)
    # no randomness inside the model, so both runs see the same function
    base = tiny_config(tmp, f"{tmp}/one", max_epoch=1, accum_grad=2, save_interval_steps=0)
    base["encoder"]["dropout"] = 0.0
    base["specaug"] = None
    two = dict(base, output_dir=f"{tmp}/two", world_size=2, dist_backend="gloo")
    p1, p2 = _run(base, tmp, "one"), _run(two, tmp, "two")
    out1, _ = p1.communicate(timeout=180)
    out2, _ = p2.communicate(timeout=180)
    assert p1.returncode == 0, out1
    assert p2.returncode == 0, out2
    a = torch.load(f"{tmp}/one/checkpoint.pth", weights_only=True)
    b = torch.load(f"{tmp}/two/checkpoint.pth", weights_only=True)
    assert a["loop"]["step"] == b["loop"]["step"] == 2
    assert len(b["rng"]) == 2  # every rank's RNG state is kept for resume
    for k, v in a["method"]["model"].items():
        assert torch.allclose(v, b["method"]["model"][k], rtol=1e-4, atol=1e-5), k
    assert os.path.exists(f"{tmp}/two/model.pth")
