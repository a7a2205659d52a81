"""Transcribing files and waveforms with a trained model: formats, rates, channels, CLI = API = data-dir decoding."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from synth_asr import FBANK, FS, random_text, synth

from bljust import Speech2Text
from bljust.bin.transcribe import main as transcribe_main
from bljust.decode.runner import decode_data_dir
from bljust.features.audio import resample
from bljust.features.extract import extract_job
from bljust.features.fbank import FbankOptions
from bljust.utils.fileio import read_table

# (name, sample rate, soundfile format, channels)
CASES = [("u08", 8000, "NIST", 1), ("u16", 16000, "WAV", 1), ("u22", 22050, "FLAC", 1),
         ("u44", 44100, "WAV", 1), ("u16st", 16000, "FLAC", 2)]
EXT = {"NIST": "sph", "WAV": "wav", "FLAC": "flac"}


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    """Test utterances written at several rates / formats / channel counts, and their texts."""
    d = str(tmp_path_factory.mktemp("audio"))
    rng = np.random.default_rng(11)
    files, texts = {}, {}
    for name, rate, fmt, ch in CASES:
        text = random_text(rng, 2)
        x = synth(text, rng, fs=rate) / 32768.0
        if ch == 2:  # two different mixes of the same speech: the down-mix is their mean
            x = np.stack([0.6 * x, 1.4 * x], axis=1)
        path = os.path.join(d, f"{name}.{EXT[fmt]}")
        sf.write(path, x, rate, format=fmt, subtype="PCM_16")
        files[name], texts[name] = path, text
    return d, files, texts


def _data_dir_decode(exp, root, files, tmp):
    """Decodes the same audio as a Kaldi data dir, through the recipe's feature and decoding code."""
    data = os.path.join(tmp, "data")
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, "wav.scp"), "w") as f:
        for name, path in sorted(files.items()):
            x, rate = sf.read(path, dtype="int16", always_2d=True)
            if x.shape[1] > 1:  # data dirs are mono: the same down-mix, written as a float file
                mono = os.path.join(tmp, f"{name}_mono.wav")
                sf.write(mono, x.astype(np.float32).mean(axis=1) / 32768.0, rate, subtype="FLOAT")
                path = mono
            f.write(f"{name} {path}\n")
    extract_job(data, os.path.join(data, "feats.ark"), os.path.join(data, "feats.scp"),
                FbankOptions.from_dict(FBANK), fs=FS, allow_resample=True, strict=True)
    out = os.path.join(tmp, "decode")
    decode_data_dir(os.path.join(exp, "model.pth"), data, os.path.join(root, "data/token_list/char"), out)
    return read_table(os.path.join(out, "text"), allow_empty_value=True)


def test_files_at_any_rate_and_channels_give_the_data_dir_decoding(tones_exp, audio_files, tmp_path, capsys):
    root, exp = tones_exp
    _, files, texts = audio_files
    ref = _data_dir_decode(exp, root, files, str(tmp_path))
    out = str(tmp_path / "hyp.txt")
    assert transcribe_main(["--model", exp] + [files[n] for n, *_ in CASES] + ["--output", out]) == 0
    printed = dict(line.split(" ", 1) if " " in line else (line, "")
                   for line in capsys.readouterr().out.splitlines())
    by_path = read_table(out, allow_empty_value=True)
    for name, *_ in CASES:
        assert printed[files[name]] == by_path[files[name]] == ref[name], name
    # and the model does recognise the speech (not merely the same wrong text twice)
    correct = sum(ref[n] == texts[n] for n in texts)
    assert correct >= 4, (ref, texts)


def test_api_agrees_with_cli_on_every_input_type(tones_exp, audio_files, capsys):
    root, exp = tones_exp
    _, files, _ = audio_files
    asr = Speech2Text.from_pretrained(exp)
    assert transcribe_main(["--model", exp] + list(files.values())) == 0
    printed = dict(line.split(" ", 1) for line in capsys.readouterr().out.splitlines())
    for name, path in files.items():
        x16, rate = sf.read(path, dtype="int16")
        xf, _ = sf.read(path, dtype="float32")
        hyp = asr(x16, rate)
        assert hyp == printed[path]
        assert asr(xf, rate) == hyp  # floats in [-1, 1]
        assert asr(torch.from_numpy(xf.T.copy() if xf.ndim == 2 else xf), rate) == hyp  # torch, (channels, samples)


def test_batched_input_gives_a_list_in_order(tones_exp):
    _, exp = tones_exp
    asr = Speech2Text.from_pretrained(exp)
    rng = np.random.default_rng(3)
    waves = [synth(random_text(rng, n), rng).astype(np.int16) for n in (1, 3, 2)]
    assert asr(waves, FS) == [asr(w, FS) for w in waves]


def test_resampling_and_downmix_are_logged(tones_exp, audio_files, caplog):
    _, exp = tones_exp
    _, files, _ = audio_files
    asr = Speech2Text.from_pretrained(exp)
    x, rate = sf.read(files["u44"], dtype="int16")
    with caplog.at_level("INFO"):
        asr(x, rate)
        asr(sf.read(files["u16st"], dtype="int16")[0], FS)
    assert "resampled from 44100 Hz to the model's 16000 Hz" in caplog.text
    assert "2 channels, down-mixed to mono" in caplog.text
    # the same resampling as the feature stage's
    mono = asr.prepare(x, rate, "x")
    np.testing.assert_allclose(mono, resample(x.astype(np.float32), rate, FS), rtol=0, atol=1e-3)


def test_beam_nbest_prints_scores_matching_the_api(tones_exp, audio_files, capsys):
    _, exp = tones_exp
    _, files, _ = audio_files
    assert transcribe_main(["--model", exp, files["u16"], "--decode_method", "beam", "--beam_size", "4",
                            "--nbest", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["1", "2", "3"]
    asr = Speech2Text.from_pretrained(exp, decode_method="beam", beam_size=4, nbest=3)
    x, rate = sf.read(files["u16"], dtype="int16")
    nbest = asr(x, rate)
    assert [(f"{s:.4f}", t) for t, s in nbest] == [(ln.split(" ", 3)[2], ln.split(" ", 3)[3] if ln.count(" ") >= 3
                                                    else "") for ln in lines]
    scores = [s for _, s in nbest]
    assert scores == sorted(scores, reverse=True)
    greedy = Speech2Text.from_pretrained(exp)(x, rate)
    assert nbest[0][0] == greedy


def test_wav_scp_with_a_pipe(tones_exp, audio_files, tmp_path, capsys):
    _, exp = tones_exp
    _, files, _ = audio_files
    scp = tmp_path / "wav.scp"
    scp.write_text(f"piped cat {files['u22']} |\nplain {files['u16']}\n")
    assert transcribe_main(["--model", exp, "--wav_scp", str(scp)]) == 0
    printed = dict(line.split(" ", 1) for line in capsys.readouterr().out.splitlines())
    assert transcribe_main(["--model", exp, files["u22"], files["u16"]]) == 0
    direct = dict(line.split(" ", 1) for line in capsys.readouterr().out.splitlines())
    assert printed == {"piped": direct[files["u22"]], "plain": direct[files["u16"]]}


def _cli(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "bljust.bin.transcribe", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_bad_inputs_fail_with_one_line_naming_the_file(tones_exp, audio_files, tmp_path):
    import shutil

    _, exp = tones_exp
    _, files, _ = audio_files
    garbage = tmp_path / "garbage.wav"
    garbage.write_text("this is not audio\n")
    no_config = tmp_path / "no_config"
    shutil.copytree(exp, no_config, symlinks=False, ignore=shutil.ignore_patterns("config.yaml", "images"))
    no_tokens = tmp_path / "no_tokens"  # a copy outside its recipe: config token_dir cannot be found
    shutil.copytree(exp, no_tokens, symlinks=False, ignore=shutil.ignore_patterns("images"))
    other_tokens = tmp_path / "other_tokens"  # the same tokens in another order: another model's list
    shutil.copytree(os.path.join(tones_exp[0], "data/token_list/char"), other_tokens)
    lines = (other_tokens / "tokens.txt").read_text().splitlines()
    (other_tokens / "tokens.txt").write_text("\n".join(lines[:2] + lines[2:][::-1]) + "\n")
    p = _cli("--model", exp, "--token_dir", str(other_tokens), files["u16"])
    assert p.returncode != 0 and "is not the token list" in p.stderr and "Traceback" not in p.stderr, p.stderr
    cases = [((exp, str(tmp_path / "missing.wav")), "missing.wav"),
             ((exp, str(garbage)), "garbage.wav"),
             ((str(tmp_path / "no_such_model"), files["u16"]), "no_such_model"),
             ((str(no_config), files["u16"]), os.path.join("no_config", "config.yaml")),
             ((str(no_tokens), files["u16"]), "token list not found")]
    for (model, audio), named in cases:
        p = _cli("--model", model, audio)
        assert p.returncode != 0, (model, audio)
        errs = [ln for ln in p.stderr.splitlines() if "ERROR" in ln]
        assert len(errs) == 1 and named in errs[0], p.stderr
        assert "Traceback" not in p.stderr
