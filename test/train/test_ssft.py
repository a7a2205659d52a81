"""LASER fine-tuning: resume is bit-for-bit, the output loads as an upstream, only the
last layers change, config errors are caught."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from bljust.bin import ssft as ssft_bin
from bljust.nets.upstream import Upstream
from bljust.train.config import ConfigError, load_config
from bljust.train.upstream_io import load_upstream
from bljust.utils.events import read_scalars


pytestmark = pytest.mark.usefixtures("one_thread")


def conf_for(arch, data, out, **over):
    args = ["--train_data_dir", data, "--output_dir", out, "--trainer.max_updates", "4",
            "--trainer.accum_grad", "2", "--trainer.log_interval", "1", "--trainer.save_interval", "100",
            "--scheduler.warmup_steps", "2", "--optim.lr", "1e-3", "--trainer.max_seconds", "0.5"]
    if over.get("scheduler.name") == "constant":  # no warm-up to configure: the key would be an error
        i = args.index("--scheduler.warmup_steps")
        del args[i:i + 2]
    for k, v in over.items():
        args += [f"--{k}", str(v)]
    conf = load_config(None, args, "ssft")
    conf["upstream"]["arch"] = arch
    return conf


def run(conf):
    from bljust.train.ssft import train_laser
    return train_laser(conf)


def test_resume_is_bit_exact_and_output_loads(tmp_path, tiny_hubert, wav_data_dir):
    data = wav_data_dir(str(tmp_path))
    full = run(conf_for(tiny_hubert, data, str(tmp_path / "full")))
    part = run(conf_for(tiny_hubert, data, str(tmp_path / "part"), **{"trainer.max_steps": 2}))
    assert part["step"] == 2 and not part["done"]
    assert not os.path.exists(tmp_path / "part" / "upstream.pth")
    rest = run(conf_for(tiny_hubert, data, str(tmp_path / "part")))
    assert rest["done"] and rest["history"] == full["history"]
    a = torch.load(tmp_path / "full" / "upstream.pth", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "upstream.pth", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "full" / "loss.png").stat().st_size > 1000

    up = load_upstream(str(tmp_path / "full" / "upstream.pth"))  # arch read from the file
    torch.manual_seed(0)
    init = Upstream(tiny_hubert)
    sd0 = init.model.state_dict()
    changed = {k.split(".")[3] for k in a if not torch.equal(a[k], sd0[k])}
    # only the last two of three transformer layers train
    assert changed == {"1", "2"}, changed
    assert isinstance(up, Upstream) and up.num_layers == 3


def test_upstream_is_kept_every_interval_across_a_resume(tmp_path, tiny_hubert, wav_data_dir):
    """trainer.upstream_interval N: upstream.<update>.pth after every N-th update but the last
    (that one is upstream.pth), holding the upstream and head as they were after that update."""
    from bljust.train.checkpoint import load_checkpoint

    data = wav_data_dir(str(tmp_path))
    out = tmp_path / "k"
    over = {"trainer.upstream_interval": 2, "trainer.max_updates": 4}
    run(conf_for(tiny_hubert, data, str(out), **over, **{"trainer.max_steps": 2}))
    ck, _ = load_checkpoint(str(out), required=("method",))
    kept = torch.load(out / "upstream.2.pth", weights_only=True)
    names, values = ck["method"]["trainable_names"], ck["method"]["trainable"]
    assert any(n.startswith("head.") for n in names) and any(n.startswith("upstream.") for n in names)
    for n, v in zip(names, values):
        got = kept["model"][n[len("upstream.model."):]] if n.startswith("upstream.") else kept["laser_head"][n[5:]]
        assert torch.equal(got, v), n
    assert run(conf_for(tiny_hubert, data, str(out), **over))["done"]  # resumed to the end
    assert sorted(f for f in os.listdir(out) if f.startswith("upstream")) == ["upstream.2.pth", "upstream.pth"]
    final = torch.load(out / "upstream.pth", weights_only=True)["model"]
    assert any(not torch.equal(final[k], kept["model"][k]) for k in final)
    assert load_upstream(str(out / "upstream.2.pth")).num_layers == 3  # loads like any upstream


def test_loss_decreases_with_training(tmp_path, tiny_hubert, wav_data_dir):
    data = wav_data_dir(str(tmp_path))
    res = run(conf_for(tiny_hubert, data, str(tmp_path / "o"), **{"trainer.max_updates": 8, "optim.lr": 3e-3,
                                                               "scheduler.name": "constant"}))
    losses = [h[1] for h in res["history"]]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    tb = read_scalars(str(tmp_path / "o"))["train/laser"]  # TensorBoard sees them (as float32)
    assert [s for s, _ in tb] == [h[0] for h in res["history"]] and np.allclose([v for _, v in tb], losses)


def test_diagnostics_are_logged_drawn_and_kept(tmp_path, tiny_hubert, wav_data_dir, caplog):
    data = wav_data_dir(str(tmp_path))
    with caplog.at_level("INFO"):
        run(conf_for(tiny_hubert, data, str(tmp_path / "d"), **{"trainer.max_updates": 4, "trainer.log_interval": 2,
                                                                 "trainer.accum_grad": 1}))
        # log_interval 1: the logged loss is the last update's own, which the diagnostics decompose
        run(conf_for(tiny_hubert, data, str(tmp_path / "e"), **{"trainer.max_updates": 2, "trainer.log_interval": 1,
                                                                 "trainer.accum_grad": 1}))
    assert sum("diagnostics at update" in r.getMessage() for r in caplog.records) == 2 + 2
    scalars = read_scalars(str(tmp_path / "d"))
    for name in ("sdtw_div", "idm", "cos_near", "cos_far", "var", "erank", "diag_dev_id", "diag_dev_pair"):
        assert [s for s, _ in scalars[f"diag/{name}"]] == [2, 4], name
    # the two terms add up to the logged loss at the last update (alpha weighs the IDM term)
    alpha = 0.4
    one = read_scalars(str(tmp_path / "e"))
    last = one["train/laser"][-1][1]
    assert abs(one["diag/sdtw_div"][-1][1] + alpha * one["diag/idm"][-1][1] - last) < 1e-4
    assert (tmp_path / "d" / "diagnostics.png").stat().st_size > 1000


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="--trainer.max_updatez: unknown key .did you mean 'max_updates'"):
        load_config(None, ["--trainer.max_updatez", "3"], "ssft")
    p = tmp_path / "c.yaml"
    p.write_text("loss:\n  alpah: 0.4\n")
    with pytest.raises(ConfigError, match="c.yaml: loss.alpah: unknown key .did you mean 'alpha'"):
        load_config(str(p), (), "ssft")
    with pytest.raises(ValueError, match="upstream"):
        load_upstream(None, None)


def test_entry_point_requires_data(capfd):
    assert ssft_bin.main(["--upstream.arch", "hubert_base"]) == 1
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train_data_dir and output_dir are required" in err[0] and "Traceback" not in err[0]


def test_pretrain_resumes_exactly_and_feeds_laser(tmp_path, tiny_hubert, wav_data_dir):
    from bljust.train.pretrain_upstream import pretrain

    data = wav_data_dir(str(tmp_path))

    def conf(out, **over):
        args = ["--train_data_dirs", f"[{data}]", "--output_dir", out, "--trainer.max_updates", "3",
                "--scheduler.warmup_steps", "1", "--batching.max_batch", "2", "--batching.max_seconds", "0.5",
                "--bestrq.codebook_size", "16", "--fbank.num_mel_bins", "20", "--trainer.log_interval", "1"]
        for k, v in over.items():
            args += [f"--{k}", str(v)]
        c = load_config(None, args, "pretrain")
        c["upstream"]["arch"] = tiny_hubert
        return c

    keep = {"trainer.upstream_interval": 1}  # upstream.<update>.pth besides upstream.pth, the same after a resume
    full = pretrain(conf(str(tmp_path / "a"), **keep))
    pretrain(conf(str(tmp_path / "b"), **{"trainer.max_steps": 1}, **keep))
    rest = pretrain(conf(str(tmp_path / "b"), **keep))
    assert rest["history"] == full["history"] and all(np.isfinite(h[1]) for h in full["history"])
    kept = ["upstream.1.pth", "upstream.2.pth", "upstream.pth"]
    for d in ("a", "b"):
        assert sorted(f for f in os.listdir(tmp_path / d) if f.startswith("upstream")) == kept
    (a1, a2), (b1, b2) = ([torch.load(tmp_path / d / f, weights_only=True)["model"] for f in kept[:2]] for d in "ab")
    assert all(torch.equal(a1[k], b1[k]) and torch.equal(a2[k], b2[k]) for k in a1)
    assert any(not torch.equal(a1[k], a2[k]) for k in a1)
    tb = read_scalars(str(tmp_path / "b"))  # the resumed run's curve joins the first one's
    assert [s for s, _ in tb["train/masked_acc"]] == [h[0] for h in full["history"]]
    c = conf_for(tiny_hubert, data, str(tmp_path / "laser"), **{"trainer.max_updates": 1})
    c["upstream"] = dict(c["upstream"], arch=None, ckpt=str(tmp_path / "a" / "upstream.pth"))
    assert run(c)["done"]
