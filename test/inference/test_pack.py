"""Packed models: one flat archive that loads in a fresh folder, decodes as the recipe does, never unpickles."""
import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
import yaml

from synth_asr import FS, random_text, synth

from bljust import Speech2Text
from bljust.inference import ModelLoadError

EXPECTED = {"model.safetensors", "config.yaml", "tokens.txt", "bpe.model", "fbank.yaml", "cmvn.yaml", "RESULTS.md",
            "README.md"}


@pytest.fixture(scope="module")
def test_waves():
    rng = np.random.default_rng(21)
    return [synth(random_text(rng, int(rng.integers(1, 4))), rng).astype(np.int16) for _ in range(6)]


def test_archive_is_flat_and_complete(tones_zip, tones_exp):
    _, exp = tones_exp
    with zipfile.ZipFile(tones_zip) as z:
        assert set(z.namelist()) == EXPECTED
        fbank = yaml.safe_load(z.read("fbank.yaml"))
        cmvn = yaml.safe_load(z.read("cmvn.yaml"))
        card = z.read("README.md").decode()
        results = z.read("RESULTS.md").decode()
    assert fbank["num_mel_bins"] == 40 and fbank["sample_rate"] == FS
    state = torch.load(os.path.join(exp, "model.pth"), weights_only=True)
    np.testing.assert_allclose(cmvn["mean"], state["normalize.mean"].numpy(), atol=1e-5)
    np.testing.assert_allclose(cmvn["istd"], state["normalize.istd"].numpy(), atol=1e-5)
    front = yaml.safe_load(card.split("---")[1])  # the front matter a model hub reads
    assert front["language"] and "automatic-speech-recognition" in front["tags"] and "license" in front
    assert front["model-index"][0]["results"][0]["metrics"][0] == {"type": "wer", "value": 3.1}  # test, not dev
    assert "Speech2Text.from_pretrained" in card and "|decode/test|" in card and results in card


def test_copy_in_a_fresh_folder_decodes_as_the_experiment(tones_zip, tones_exp, test_waves, tmp_path, monkeypatch):
    _, exp = tones_exp
    ref = Speech2Text.from_pretrained(exp, decode_method="beam", beam_size=4, nbest=2)
    expected = ref(test_waves, FS)
    fresh = tmp_path / "elsewhere"
    fresh.mkdir()
    shutil.copy(tones_zip, fresh / "model.zip")
    monkeypatch.chdir(fresh)  # no recipe, no exp dir, no path.sh
    got = Speech2Text.from_pretrained("model.zip", decode_method="beam", beam_size=4, nbest=2)(test_waves, FS)
    assert got == expected
    with zipfile.ZipFile("model.zip") as z:
        z.extractall("unpacked")
    got = Speech2Text.from_pretrained("unpacked", decode_method="beam", beam_size=4, nbest=2)(test_waves, FS)
    assert got == expected


def test_packed_model_decodes_as_the_recipe_does(tones_zip, tones_exp, tmp_path):
    """The recipe's decoding (bljust.bin.decode on a data dir) and the packed model agree."""
    import soundfile as sf
    from bljust.decode.runner import decode_data_dir
    from bljust.features.extract import extract_job
    from bljust.features.fbank import FbankOptions
    from bljust.utils.fileio import read_table
    from synth_asr import FBANK

    root, exp = tones_exp
    rng = np.random.default_rng(5)
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "wav.scp", "w") as f:
        for i in range(5):
            path = tmp_path / f"u{i}.wav"
            sf.write(str(path), synth(random_text(rng, 2), rng).astype(np.int16), FS)
            f.write(f"u{i} {path}\n")
    extract_job(str(data), str(data / "feats.ark"), str(data / "feats.scp"), FbankOptions.from_dict(FBANK), fs=FS)
    decode_data_dir(os.path.join(exp, "model.pth"), str(data), os.path.join(root, "data/token_list/char"),
                    str(tmp_path / "dec"), decode_method="beam", beam_size=4)
    ref = read_table(str(tmp_path / "dec" / "text"), allow_empty_value=True)
    asr = Speech2Text.from_pretrained(tones_zip, decode_method="beam", beam_size=4)
    for i in range(5):
        x, _ = sf.read(str(tmp_path / f"u{i}.wav"), dtype="int16")
        assert asr(x, FS) == ref[f"u{i}"]


def _tampered(src, dst, replace=None, add=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if replace and name == replace[0]:
                data = replace[1]
            zout.writestr(name, data)
        if add:
            zout.writestr(add[0], add[1])
    return dst


def _pickle_bytes(obj, tmp):
    p = os.path.join(tmp, "x.pkl")
    torch.save(obj, p)
    return open(p, "rb").read()


def test_tampered_archive_is_refused_naming_the_file(tones_zip, tmp_path):
    state = {"w": torch.zeros(2)}
    cases = [
        (_tampered(tones_zip, str(tmp_path / "a.zip"), replace=("model.safetensors", _pickle_bytes(state, tmp_path))),
         "model.safetensors"),
        (_tampered(tones_zip, str(tmp_path / "b.zip"), add=("pytorch_model.bin", _pickle_bytes(state, tmp_path))),
         "pytorch_model.bin"),
        (_tampered(tones_zip, str(tmp_path / "c.zip"), add=("extra.pth", _pickle_bytes(state, tmp_path))),
         "extra.pth"),
    ]
    for path, named in cases:
        with pytest.raises(ModelLoadError, match=re.escape(named)):
            Speech2Text.from_pretrained(path)
    # an unpacked folder is checked the same way
    d = tmp_path / "unpacked"
    with zipfile.ZipFile(cases[0][0]) as z:
        z.extractall(d)
    with pytest.raises(ModelLoadError, match="model.safetensors: not a safetensors file"):
        Speech2Text.from_pretrained(str(d))
    p = subprocess.run([sys.executable, "-m", "bljust.bin.transcribe", "--model", cases[1][0], "x.wav"],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert p.returncode != 0 and "pytorch_model.bin" in p.stderr and "Traceback" not in p.stderr


def test_loading_never_unpickles(tones_zip, tmp_path, monkeypatch):
    def no_unpickling(*a, **k):
        raise AssertionError("torch.load called while loading a packed model")

    monkeypatch.setattr(torch, "load", no_unpickling)
    Speech2Text.from_pretrained(tones_zip)


def test_pack_refuses_bad_input(tones_exp, tmp_path):
    from bljust.bin.pack import main

    root, exp = tones_exp
    assert main(["--exp_dir", str(tmp_path / "nope"), "--out", str(tmp_path / "x.zip")]) != 0
    assert main(["--exp_dir", exp, "--out", str(tmp_path / "x.tar")]) != 0
    # fbank options that contradict the ones training recorded: refused, not packed
    (tmp_path / "fbank80.yaml").write_text("num_mel_bins: 80\n")
    assert main(["--exp_dir", exp, "--out", str(tmp_path / "y.zip"), "--token_dir",
                 os.path.join(root, "data/token_list/char"), "--fbank_conf", str(tmp_path / "fbank80.yaml")]) != 0
    assert not os.path.exists(tmp_path / "y.zip")
    tok = ["--token_dir", os.path.join(root, "data/token_list/char")]
    assert main(["--exp_dir", exp, "--out", str(tmp_path / "z.zip"), "--fs", "8000"] + tok) != 0  # not its rate
    # the recipe passes its --fs (and --fbank_conf when it has one): agreeing with the record is fine
    assert main(["--exp_dir", exp, "--out", str(tmp_path / "z.zip"), "--fs", str(FS)] + tok) == 0
    (tmp_path / "fbank40.yaml").write_text("num_mel_bins: 40\n")
    assert main(["--exp_dir", exp, "--out", str(tmp_path / "w.zip"), "--fbank_conf", str(tmp_path / "fbank40.yaml")]
                + tok) == 0
