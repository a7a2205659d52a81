"""The packed state-dict names are the documented ones, and the doc's plain-PyTorch loading code runs."""
import os
import re
import subprocess
import sys
import zipfile

import numpy as np
import torch

from bljust import Speech2Text
from bljust.nets.asr_model import build_asr_model
from bljust.train.config import load_config

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs",
                   "using_a_model.md")


def _doc_block(lang: str, index: int = 0) -> str:
    return re.findall(rf"```{lang}\n(.*?)```", open(DOC, encoding="utf-8").read(), flags=re.S)[index]


def test_documented_state_dict_names_are_the_models():
    conf = load_config(None, [])
    conf["encoder"].update(num_layers=3)
    names = []
    for k in build_asr_model(conf, 80, 30).state_dict():
        k = re.sub(r"blocks\.\d+\.", "blocks.<i>.", k)
        if k not in names:
            names.append(k)
    documented = [line.split()[0] for line in _doc_block("text").splitlines() if line.strip()]
    assert documented == names


def test_doc_code_loads_the_packed_encoder_in_plain_pytorch(tones_zip, tmp_path):
    from bljust.features.fbank import Fbank
    from synth_asr import random_text, synth

    packed_dir = str(tmp_path / "unpacked")
    with zipfile.ZipFile(tones_zip) as z:
        z.extractall(packed_dir)
    asr = Speech2Text.from_pretrained(packed_dir)
    rng = np.random.default_rng(2)
    wave = synth(random_text(rng, 2), rng)
    feats = torch.from_numpy(Fbank(asr.fbank_opts)(wave))[None]
    scope = {"packed_dir": packed_dir, "feats": feats}
    exec(compile(_doc_block("python", 1), DOC, "exec"), scope)
    np.testing.assert_allclose(scope["log_probs"][0].numpy(), asr.log_probs([wave])[0].numpy(), atol=1e-5)


def test_import_bljust_stays_cheap():
    code = "import sys, bljust; print('torch' in sys.modules); bljust.Speech2Text; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
