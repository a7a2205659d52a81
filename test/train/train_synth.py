"""Tiny synthetic training data and a character tokenizer stand-in for trainer tests."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import kaldiio
import numpy as np

LETTERS = "abcdefgh "


class CharTokenizer:
    """tokens.txt-like: 0 <blank>, 1 <unk>, then LETTERS (space included)."""

    blank_id, unk_id = 0, 1
    vocab_size = 2 + len(LETTERS)

    def encode(self, text: str) -> list:
        return [2 + LETTERS.index(c) if c in LETTERS else 1 for c in text]

    def decode(self, ids) -> str:
        return "".join(LETTERS[i - 2] if i >= 2 else "" for i in ids)


def make_data_dir(path: str, n_utts: int = 24, dim: int = 20, seed: int = 0, min_len: int = 30, max_len: int = 90) -> str:
    """feats.scp/ark, utt2num_frames, text, utt2spk; each letter paints a band of the spectrum."""
    rng = np.random.default_rng(seed)
    os.makedirs(path, exist_ok=True)
    texts, lens = {}, {}
    with kaldiio.WriteHelper(f"ark,scp:{path}/feats.ark,{path}/feats.scp") as w:
        for i in range(n_utts):
            key = f"spk{i % 3}-utt{i:03d}"
            t = int(rng.integers(min_len, max_len + 1))
            n_chars = max(1, t // 12)
            text = "".join(rng.choice(list(LETTERS[:-1]), n_chars))
            x = rng.normal(0, 1, (t, dim)).astype(np.float32)
            seg = t // n_chars
            for j, c in enumerate(text):
                band = LETTERS.index(c) * (dim // len(LETTERS))
                x[j * seg:(j + 1) * seg, band:band + 2] += 3.0
            w(key, x)
            texts[key], lens[key] = text, t
    keys = sorted(texts)
    with open(f"{path}/text", "w") as f:
        f.writelines(f"{k} {texts[k]}\n" for k in keys)
    with open(f"{path}/utt2num_frames", "w") as f:
        f.writelines(f"{k} {lens[k]}\n" for k in keys)
    with open(f"{path}/utt2spk", "w") as f:
        f.writelines(f"{k} {k.split('-')[0]}\n" for k in keys)
    return path


def tiny_config(tmp: str, out: str, **trainer) -> dict:
    from bljust.train.config import load_config

    conf = load_config(None, [])
    conf.update(train_data_dir=f"{tmp}/train", valid_data_dir=f"{tmp}/dev", token_dir=f"{tmp}/tok", output_dir=out,
                num_threads=1)
    conf["encoder"].update(d_model=32, num_heads=2, ffn_dim=64, num_layers=2, kernel_size=3, dropout=0.1)
    conf["specaug"].update(freq_mask_width=4, time_mask_width=5, time_mask_ratio=0.1)
    conf["scheduler"].update(warmup_steps=5)
    conf["batching"].update(batch_bins=400, max_batch_size=0)
    conf["trainer"].update(max_epoch=2, log_interval=2, save_interval_steps=2, keep_nbest_models=2, nbest_average=2)
    conf["trainer"].update(trainer)
    return conf


def run_driver(conf: dict, tmp: str, name: str, pause: float | None = None) -> subprocess.Popen:
    """Starts train_driver.py on `conf` in a subprocess (stdout and stderr merged)."""
    path = os.path.join(tmp, f"{name}.json")
    with open(path, "w") as f:
        json.dump(conf, f)
    driver = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_driver.py")
    cmd = [sys.executable, driver, path] + ([str(pause)] if pause else [])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_and_kill(conf: dict, tmp: str, name: str, ckpt: str, timeout: float = 180) -> None:
    """Starts train_driver.py on `conf` with a long sleep after each mid-run checkpoint and
    SIGKILLs it once `ckpt` exists (during that sleep: the checkpoint is complete)."""
    import signal
    import time

    p = run_driver(conf, tmp, name, pause=60)
    deadline = time.time() + timeout
    while not os.path.exists(ckpt) and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert os.path.exists(ckpt), p.communicate()[0]
    time.sleep(0.5)  # written atomically: this only lets the sleep begin
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
