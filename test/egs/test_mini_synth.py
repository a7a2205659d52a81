"""The mini_synth corpus: valid Kaldi dirs, disjoint speakers, hidden unlabeled text,
16 kHz audio, byte-identical for a seed, and a grammar with a real vocabulary."""
from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

RECIPE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "egs", "mini_synth", "asr1")
LOCAL = os.path.join(RECIPE, "local")
sys.path.insert(0, LOCAL)
import grammar  # noqa: E402
import synth  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
SETS = ("train", "train_unlab", "dev", "test")
SMALL = ["--num_train", "6", "--num_unlab", "8", "--num_dev", "4", "--num_test", "4"]


def run_synth(cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(LOCAL, "synth.py"), "--wav_dir", "wav",
                           "--data_dir", "data", *SMALL, *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def digest(root) -> str:
    """Hash of every file under root (names and bytes), i.e. the whole corpus."""
    h = hashlib.sha256()
    for dirpath, dirnames, files in sorted(os.walk(root)):
        dirnames.sort()
        for name in sorted(files):
            p = os.path.join(dirpath, name)
            h.update(os.path.relpath(p, root).encode() + b"\0")
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def table(path):
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8").splitlines()
    return [ln.split(" ", 1) for ln in lines]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_synth")
    p = run_synth(root, "--seed", "3", "--nj", "2")
    assert p.returncode == 0, p.stderr
    return root


def test_kaldi_dirs_are_valid(corpus):
    for s in SETS:
        d = corpus / "data" / s
        labeled = s != "train_unlab"
        files = ["wav.scp", "utt2spk", "spk2utt"] + (["text", "text.phn"] if labeled else ["text.unused"])
        keys = None
        for name in files:
            rows = table(d / name)
            k = [r[0] for r in rows]
            assert k == sorted(k, key=str.encode), f"{s}/{name} not C-sorted"
            assert len(set(k)) == len(k), f"{s}/{name} has duplicate keys"
            assert all(len(r) == 2 and r[1].strip() for r in rows), f"{s}/{name} has an empty value"
            if name != "spk2utt":
                assert keys is None or k == keys, f"{s}/{name} keys differ from wav.scp"
                keys = k
        utt2spk = dict(table(d / "utt2spk"))
        spk2utt = {spk: us.split() for spk, us in table(d / "spk2utt")}
        assert sorted(u for us in spk2utt.values() for u in us) == sorted(utt2spk)
        for spk, us in spk2utt.items():
            assert all(utt2spk[u] == spk and u.startswith(spk + "-") for u in us)
    assert [len(table(corpus / "data" / s / "wav.scp")) for s in SETS] == [6, 8, 4, 4]


def test_transcripts_are_uppercase_words_and_phonemes_present(corpus):
    for s in ("train", "dev", "test"):
        for _, text in table(corpus / "data" / s / "text"):
            assert re.fullmatch(r"[A-Z']+( [A-Z']+)*", text), text
        for _, phn in table(corpus / "data" / s / "text.phn"):
            assert "'" not in phn and len(phn.split()) >= 3, phn


def test_speakers_are_disjoint(corpus):
    spk = {s: {r[1] for r in table(corpus / "data" / s / "utt2spk")} for s in SETS}
    train_side = spk["train"] | spk["train_unlab"]
    assert not train_side & spk["dev"]
    assert not train_side & spk["test"]
    assert not spk["dev"] & spk["test"]
    # and for the full default sizes, without synthesising anything
    pools = synth.split_speakers(1)
    assert not {x[0] for x in pools["train"]} & {x[0] for x in pools["dev"] + pools["test"]}


def test_unlabeled_set_hides_its_transcripts(corpus):
    d = corpus / "data" / "train_unlab"
    assert not (d / "text").exists() and not (d / "text.phn").exists()
    assert (d / "text.unused").exists() and (d / "text.phn.unused").exists()


def test_audio_is_16k_mono_16bit_speech(corpus):
    for s in SETS:
        for utt, path in table(corpus / "data" / s / "wav.scp"):
            info = sf.info(str(corpus / path))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), utt
            assert 0.5 < info.duration < 20, (utt, info.duration)
            x, _ = sf.read(str(corpus / path))
            assert 0.1 < np.abs(x).max() < 1.0, utt


def test_same_seed_is_byte_identical_for_any_nj_and_other_seed_differs(corpus, tmp_path):
    again = tmp_path / "again"
    other = tmp_path / "other"
    again.mkdir()
    other.mkdir()
    assert run_synth(again, "--seed", "3", "--nj", "1").returncode == 0
    assert digest(again) == digest(corpus)
    assert run_synth(other, "--seed", "4", "--nj", "2").returncode == 0
    assert digest(other) != digest(corpus)
    assert table(other / "data" / "dev" / "text") != table(corpus / "data" / "dev" / "text")


def test_rerun_after_a_kill_finishes_the_same_corpus(corpus, tmp_path):
    shutil.copytree(corpus, tmp_path / "c")
    c = tmp_path / "c"
    victim = table(c / "data" / "dev" / "wav.scp")[0][1]
    os.unlink(c / victim)  # as if killed before this utterance
    (c / "wav" / "dev" / ".half.wav.123.tmp").write_bytes(b"RIFF")  # a killed write
    shutil.rmtree(c / "data" / "test")
    p = run_synth(c, "--seed", "3", "--nj", "2")
    assert p.returncode == 0, p.stderr
    assert "1 of 22 utterances to synthesise" in p.stderr
    assert digest(c) == digest(corpus)


def test_wav_dir_of_another_seed_is_refused(corpus, tmp_path):
    shutil.copytree(corpus, tmp_path / "c")
    p = run_synth(tmp_path / "c", "--seed", "5")
    assert p.returncode == 1 and "other settings" in p.stderr


def test_grammar_vocabulary_and_determinism():
    vocab = grammar.vocabulary()
    assert len(vocab) >= 300
    assert {"FORTY", "MARCH", "THIRD", "O'CLOCK", "KITCHEN", "LONDON", "SPELL", "B"} <= vocab
    a = [grammar.sentence(random.Random(7)) for _ in range(3)]
    assert a == [grammar.sentence(random.Random(7)) for _ in range(3)]
    assert grammar.transcript(["call", "john", "at", "seven", "_p", "_m"]) == "CALL JOHN AT SEVEN P M"
    assert grammar.speakable(["spell", "_b", "_a", "_t"]) == "spell b [[eI]] t"
    assert grammar.cardinal(2042) == "two thousand forty two".split()
    assert grammar.ordinal(23) == ["twenty", "third"]


def test_resampler_keeps_speech_band_and_removes_aliases():
    t = np.arange(22050) / 22050
    y = synth.resample(np.sin(2 * np.pi * 1000 * t))
    assert len(y) == 16000
    ref = np.sin(2 * np.pi * 1000 * np.arange(16000) / 16000)
    assert np.abs(y - ref)[200:-200].max() < 1e-3
    assert np.abs(synth.resample(np.sin(2 * np.pi * 9500 * t)))[200:-200].max() < 1e-3


@pytest.mark.skipif(not os.path.exists(os.path.join(RECIPE, "utils", "parse_options.sh")),
                    reason="utils/parse_options.sh not there yet")
def test_data_sh_runs_with_kaldi_options(tmp_path):
    p = subprocess.run(["local/data.sh", "--num_train", "2", "--num_unlab", "2", "--num_dev", "2",
                        "--num_test", "2", "--wav_dir", str(tmp_path / "wav"), "--data_dir",
                        str(tmp_path / "data")], cwd=RECIPE, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "data" / "train_unlab" / "text.unused").exists()
    assert len(table(tmp_path / "data" / "dev" / "text")) == 2
