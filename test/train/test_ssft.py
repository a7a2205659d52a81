"""LASER fine-tuning: resume is bit-for-bit, the output loads as an upstream, only the
last layers change, config errors are caught."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from bljust.bin import ssft as ssft_bin
from bljust.nets.upstream import Upstream
from bljust.train.config import ConfigError, load_config
from bljust.train.ssft import load_upstream


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread is faster than two on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

TINY = dict(kind="hubert", extractor_mode="group_norm",
            extractor_conv_layer_config=[[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2],
                                         [16, 2, 2]],
            extractor_conv_bias=False, encoder_embed_dim=32, encoder_projection_dropout=0.1,
            encoder_pos_conv_kernel=8, encoder_pos_conv_groups=4, encoder_num_layers=3, encoder_num_heads=2,
            encoder_attention_dropout=0.1, encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.0,
            encoder_dropout=0.1, encoder_layer_norm_first=False, encoder_layer_drop=0.0)


def make_data_dir(root, n=5, text=True, seed=0):
    rng = np.random.default_rng(seed)
    d = os.path.join(root, "data")
    os.makedirs(d, exist_ok=True)
    words = ["A B", "HELLO", "GO ON"]
    wav, txt, phn, u2s = [], [], [], []
    for i in range(n):
        utt = f"u{i:02d}"
        t = np.arange(int(16000 * (0.4 + 0.1 * i))) / 16000
        x = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t * (1 + t)) + 0.01 * rng.standard_normal(t.size)
        p = os.path.join(root, f"{utt}.wav")
        sf.write(p, x.astype(np.float32), 16000, subtype="PCM_16")
        wav.append(f"{utt} {p}")
        txt.append(f"{utt} {words[i % 3]}")
        phn.append(f"{utt} {' '.join(words[i % 3].lower().replace(' ', ''))}")
        u2s.append(f"{utt} {utt}")
    for name, rows in (("wav.scp", wav), ("text", txt), ("text.phn", phn), ("utt2spk", u2s), ("spk2utt", u2s)):
        if text or name not in ("text", "text.phn"):
            with open(os.path.join(d, name), "w") as f:
                f.write("\n".join(rows) + "\n")
    return d


def conf_for(tmp, data, out, **over):
    args = ["--train_data_dir", data, "--output_dir", out, "--trainer.max_updates", "4",
            "--trainer.accum_grad", "2", "--trainer.log_interval", "1", "--trainer.save_interval", "100",
            "--scheduler.warmup_steps", "2", "--optim.lr", "1e-3", "--trainer.max_seconds", "0.5"]
    if over.get("scheduler.name") == "constant":  # no warm-up to configure: the key would be an error
        i = args.index("--scheduler.warmup_steps")
        del args[i:i + 2]
    for k, v in over.items():
        args += [f"--{k}", str(v)]
    conf = load_config(None, args, "ssft")
    conf["upstream"]["arch"] = TINY
    return conf


def run(conf):
    from bljust.train.ssft import train_laser
    return train_laser(conf)


def test_resume_is_bit_exact_and_output_loads(tmp_path):
    data = make_data_dir(str(tmp_path))
    full = run(conf_for(tmp_path, data, str(tmp_path / "full")))
    part = run(conf_for(tmp_path, data, str(tmp_path / "part"), **{"trainer.max_steps": 2}))
    assert part["step"] == 2 and not part["done"]
    assert not os.path.exists(tmp_path / "part" / "upstream.pth")
    rest = run(conf_for(tmp_path, data, str(tmp_path / "part")))
    assert rest["done"] and rest["history"] == full["history"]
    a = torch.load(tmp_path / "full" / "upstream.pth", weights_only=True)["model"]
    b = torch.load(tmp_path / "part" / "upstream.pth", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "full" / "loss.png").stat().st_size > 1000

    up = load_upstream(str(tmp_path / "full" / "upstream.pth"))  # arch read from the file
    torch.manual_seed(0)
    init = Upstream(TINY)
    sd0 = init.model.state_dict()
    changed = {k.split(".")[3] for k in a if not torch.equal(a[k], sd0[k])}
    # only the last two of three transformer layers train
    assert changed == {"1", "2"}, changed
    assert isinstance(up, Upstream) and up.num_layers == 3


def test_loss_decreases_with_training(tmp_path):
    data = make_data_dir(str(tmp_path))
    res = run(conf_for(tmp_path, data, str(tmp_path / "o"), **{"trainer.max_updates": 8, "optim.lr": 3e-3,
                                                               "scheduler.name": "constant"}))
    losses = [h[1] for h in res["history"]]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


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


def test_pretrain_resumes_exactly_and_feeds_laser(tmp_path):
    from bljust.train.pretrain_upstream import pretrain

    data = make_data_dir(str(tmp_path))

    def conf(out, **over):
        args = ["--train_data_dirs", f"[{data}]", "--output_dir", out, "--trainer.max_updates", "3",
                "--scheduler.warmup_steps", "1", "--batching.max_batch", "2", "--batching.max_seconds", "0.5",
                "--bestrq.codebook_size", "16", "--fbank.num_mel_bins", "20"]
        for k, v in over.items():
            args += [f"--{k}", str(v)]
        c = load_config(None, args, "pretrain")
        c["upstream"]["arch"] = TINY
        return c

    full = pretrain(conf(str(tmp_path / "a")))
    pretrain(conf(str(tmp_path / "b"), **{"trainer.max_steps": 1}))
    rest = pretrain(conf(str(tmp_path / "b")))
    assert rest["history"] == full["history"] and all(np.isfinite(h[1]) for h in full["history"])
    c = conf_for(tmp_path, data, str(tmp_path / "laser"), **{"trainer.max_updates": 1})
    c["upstream"] = dict(c["upstream"], arch=None, ckpt=str(tmp_path / "a" / "upstream.pth"))
    assert run(c)["done"]
