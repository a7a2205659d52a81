import os

import pytest

from synth_asr import build_experiment


@pytest.fixture(scope="session")
def tones_exp(tmp_path_factory):
    """A trained experiment in a recipe-like folder: (recipe root, exp dir). About a minute of CPU."""
    root = str(tmp_path_factory.mktemp("tones_recipe"))
    return root, build_experiment(root)


@pytest.fixture(scope="session")
def tones_zip(tones_exp, tmp_path_factory):
    """The experiment packed with bljust.bin.pack."""
    from bljust.bin.pack import main

    root, exp = tones_exp
    out = os.path.join(str(tmp_path_factory.mktemp("packed")), "asr_tones.zip")
    assert main(["--exp_dir", exp, "--out", out, "--token_dir", os.path.join(root, "data/token_list/char")]) == 0
    return out
