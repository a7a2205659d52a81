"""Every training method resumes bit-exactly after SIGKILL, through the one training core.

For each of the five methods (supervised CTC, BL-JUST, LASER fine-tuning, a SUPERB downstream,
upstream pre-training) a run is killed with SIGKILL while it sleeps after its first mid-run
checkpoint, then started again; it must end with the same checkpoint as a run that was never
interrupted: the same layout (loop / method / rng), every tensor of the method's state
(parameters, optimiser moments, schedulers, data positions, random streams) equal, the same
logged rows and rounds, and the same output model file.
"""
import pytest
import torch

from train_synth import make_data_dir, run_and_kill, run_driver, tiny_config

from bljust.train.config import load_config

METHODS = ["supervised", "bilevel", "ssft", "superb", "pretrain"]
OUTPUT = {"supervised": "model.pth", "bilevel": "model.pth", "ssft": "upstream.pth", "superb": "downstream.pth",
          "pretrain": "upstream.pth"}


@pytest.fixture(scope="module")
def data(tmp_path_factory, wav_data_dir):
    tmp = str(tmp_path_factory.mktemp("kill"))
    make_data_dir(f"{tmp}/train", 12)
    make_data_dir(f"{tmp}/dev", 4, seed=1)
    make_data_dir(f"{tmp}/unlab", 12, seed=2)
    wav_data_dir(f"{tmp}/wav")
    return tmp


def config(method, tmp, out, arch):
    if method in ("supervised", "bilevel"):
        conf = tiny_config(tmp, out, max_epoch=2, save_interval_steps=2)
        if method == "bilevel":
            conf.update(method="bilevel", unlab_data_dir=f"{tmp}/unlab")
            conf["unsup"] = {"name": "cpc", "num_steps": 2, "num_negatives": 8, "proj_dim": 16}
            conf["bilevel"].update(n1=2, n2=3, n3=2, k=1, valid_interval=3)
            conf["trainer"]["save_interval_steps"] = 1
        return conf
    wav = f"{tmp}/wav/data"
    args = {"ssft": ["--train_data_dir", wav, "--trainer.max_updates", "4", "--trainer.accum_grad", "2",
                     "--trainer.save_interval", "2", "--trainer.log_interval", "1", "--scheduler.warmup_steps", "2",
                     "--trainer.max_seconds", "0.5"],
            "superb": ["--task", "pr", "--train_data_dir", wav, "--valid_data_dir", wav, "--trainer.max_updates", "4",
                       "--trainer.valid_interval", "2", "--trainer.log_interval", "1", "--model.proj_dim", "16",
                       "--batching.max_batch", "2", "--optim.lr", "5e-3"],
            "pretrain": ["--train_data_dirs", f"[{wav}]", "--trainer.max_updates", "3", "--trainer.save_interval", "1",
                         "--trainer.log_interval", "1", "--scheduler.warmup_steps", "1", "--batching.max_batch", "2",
                         "--batching.max_seconds", "0.5", "--bestrq.codebook_size", "16",
                         "--fbank.num_mel_bins", "20"]}[method]
    conf = load_config(None, args + ["--output_dir", out, "--num_threads", "1"], method)
    conf["upstream"]["arch"] = dict(arch)
    conf["__method__"] = method
    return conf


def same(a, b, where="") -> None:
    """Equal structure and values; tensors bit for bit."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def finish(p):
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    return out


@pytest.mark.parametrize("method", METHODS)
def test_sigkill_resume_is_bit_exact(method, data, tmp_path, tiny_hubert):
    tmp = str(tmp_path)
    ref = run_driver(config(method, data, f"{tmp}/ref", tiny_hubert), tmp, "ref")
    killed_conf = config(method, data, f"{tmp}/killed", tiny_hubert)
    ckpt = f"{tmp}/killed/checkpoint.pth"
    run_and_kill(killed_conf, tmp, "killed", ckpt)
    mid = torch.load(ckpt, weights_only=True)["loop"]["step"]
    finish(ref)
    out = finish(run_driver(killed_conf, tmp, "killed"))
    assert f"resumed at {'step' if method in ('supervised', 'bilevel') else 'update'} {mid}" in out

    a = torch.load(f"{tmp}/ref/checkpoint.pth", weights_only=True)
    b = torch.load(ckpt, weights_only=True)
    assert 0 < mid < a["loop"]["step"] == b["loop"]["step"]
    assert {"loop", "method", "rng"} <= set(a) and set(a) == set(b)  # one layout for every method
    same(a["method"], b["method"], "method")
    for key in ("log", "history", "bad_steps", "round"):
        same(a["loop"][key], b["loop"][key], f"loop.{key}")
    same(torch.load(f"{tmp}/ref/{OUTPUT[method]}", weights_only=True),
         torch.load(f"{tmp}/killed/{OUTPUT[method]}", weights_only=True), OUTPUT[method])
