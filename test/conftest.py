"""Fixtures shared by the tests of every package (test/<pkg>/conftest.py add their own)."""
from __future__ import annotations

import os
from typing import Any, Callable, Dict

import numpy as np
import pytest
import soundfile as sf
import torch


@pytest.fixture
def one_thread():
    """Tiny models are all synchronisation: on a busy 2-core CPU one intra-op thread is several
    times faster than two. Use with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny_conformer() -> Dict[str, Any]:
    """encoder: section of a one-block Conformer that builds and runs in milliseconds."""
    return dict(d_model=32, num_heads=2, ffn_dim=64, num_layers=1, kernel_size=5, dropout=0.0)


@pytest.fixture(scope="session")
def tiny_hubert() -> Dict[str, Any]:
    """upstream.arch of a 3-layer HuBERT-shaped upstream (320x downsampling, as the real ones).
    One dict for the whole session (module fixtures use it too): copy it before changing it."""
    return dict(kind="hubert", extractor_mode="group_norm",
                extractor_conv_layer_config=[[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2],
                                             [16, 2, 2], [16, 2, 2]],
                extractor_conv_bias=False, encoder_embed_dim=32, encoder_projection_dropout=0.1,
                encoder_pos_conv_kernel=8, encoder_pos_conv_groups=4, encoder_num_layers=3, encoder_num_heads=2,
                encoder_attention_dropout=0.1, encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.0,
                encoder_dropout=0.1, encoder_layer_norm_first=False, encoder_layer_drop=0.0)


def _write_wav_data_dir(root: str, n: int = 5, text: bool = True, seed: int = 0) -> str:
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


@pytest.fixture(scope="session")
def wav_data_dir() -> Callable[..., str]:
    """wav_data_dir(root, n=5, text=True, seed=0) -> <root>/data: n chirps of 0.4 s + 0.1 s·i with
    wav.scp, utt2spk/spk2utt and (text=True) word text and character 'phones' in text.phn."""
    return _write_wav_data_dir
