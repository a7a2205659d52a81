"""LibriSpeech preparation on a miniature corpus in the openslr 12 layout."""
import importlib.util
import os
import subprocess
import sys

import pytest
import soundfile as sf

_spec = importlib.util.spec_from_file_location("egs_fixtures", os.path.join(os.path.dirname(__file__), "fixtures.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

from bljust.data.corpora import librispeech  # noqa: E402
from bljust.utils.fileio import FormatError  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EVAL = ["dev-clean", "dev-other"]
UNLAB = ["train-clean-360", "train-other-500"]
GENDER = {"19": "f", "60": "m", "103": "f", "1034": "m", "2277": "f", "3752": "m"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("libri"))
    return root, fx.make_librispeech(root)


def check_set(d, truth, text_name="text"):
    fx.check_data_dir(d, text_name)
    text = fx.table(os.path.join(d, text_name))
    utt2spk = fx.table(os.path.join(d, "utt2spk"))
    assert text == {u: t for u, (_, t) in truth.items()}
    assert utt2spk == {u: s for u, (s, _) in truth.items()}
    assert fx.table(os.path.join(d, "spk2gender")) == {s: GENDER[s.split("-")[0]] for s, _ in truth.values()}
    wav = fx.table(os.path.join(d, "wav.scp"))
    for utt, path in wav.items():
        assert path.endswith(f"/{utt}.flac") and os.path.isabs(path)
        x, sr = sf.read(path, dtype="int16")
        assert sr == fx.SR and x.size > 0


def test_prepare_splits_and_contents(corpus, tmp_path):
    root, truth = corpus
    out = str(tmp_path / "data")
    written = librispeech.prepare(root, out, ["train-clean-100"], UNLAB, EVAL)
    assert sorted(os.path.basename(d) for d in written) == ["dev_clean", "dev_other", "train_clean_100", "train_unlab"]
    check_set(os.path.join(out, "train_clean_100"), truth["train-clean-100"])
    for s in EVAL:
        check_set(os.path.join(out, s.replace("-", "_")), truth[s])
    unlab = {**truth["train-clean-360"], **truth["train-other-500"]}
    check_set(os.path.join(out, "train_unlab"), unlab, text_name="text.unused")
    # Each data dir is complete and nothing else was written.
    assert sorted(os.listdir(os.path.join(out, "train_unlab"))) == [
        "spk2gender", "spk2utt", "text.unused", "utt2spk", "wav.scp"]
    # Audio is the planted audio, not just any readable file.
    wav = fx.table(os.path.join(out, "train_clean_100", "wav.scp"))
    x, _ = sf.read(wav["19-198-0001"], dtype="int16")
    assert x.size == int(0.25 * fx.SR)


def test_labeled_unlabeled_are_options(corpus, tmp_path):
    root, truth = corpus
    out = str(tmp_path / "data")
    librispeech.prepare(root, out, ["train-clean-100", "train-clean-360"], ["train-other-500"], [])
    check_set(os.path.join(out, "train_clean_360"), truth["train-clean-360"])
    check_set(os.path.join(out, "train_unlab"), truth["train-other-500"], text_name="text.unused")
    with pytest.raises(ValueError, match="both labeled and unlabeled"):
        librispeech.prepare(root, out, ["train-clean-100"], ["train-clean-100"], [])


def test_broken_corpus_is_a_clear_error(tmp_path):
    root = str(tmp_path)
    fx.make_librispeech(root)
    cdir = os.path.join(root, "LibriSpeech", "dev-other", "3752", "4943")
    os.remove(os.path.join(cdir, "3752-4943-0000.flac"))
    with pytest.raises(FormatError, match=r"3752-4943.trans.txt:1: no audio 3752-4943-0000.flac"):
        librispeech.prepare(root, str(tmp_path / "data"), [], [], ["dev-other"])
    spaced = str(tmp_path / "with space")
    fx.make_librispeech(spaced)
    with pytest.raises(ValueError, match="contains whitespace"):
        librispeech.prepare(spaced, str(tmp_path / "data"), [], [], ["dev-clean"])
    with open(os.path.join(root, "LibriSpeech", "SPEAKERS.TXT"), "a") as f:
        f.write("77 | X | dev-clean | 1.0 | Nobody\n")
    with pytest.raises(FormatError, match=r"SPEAKERS.TXT:9:"):
        librispeech.prepare(root, str(tmp_path / "data"), [], [], ["dev-clean"])


def test_data_sh(corpus, tmp_path):
    root, truth = corpus
    work = tmp_path / "asr1"
    fx.recipe_workdir(REPO, os.path.join("egs", "librispeech", "asr1"), str(work))
    subprocess.run(
        ["bash", "local/data.sh", "--datadir", root, "--download", "false", "--python", sys.executable,
         "--eval_sets", " ".join(EVAL), "--unlabeled_sets", "train-other-500 train-clean-360"],
        cwd=work, check=True, capture_output=True, timeout=120)
    check_set(str(work / "data" / "train_clean_100"), truth["train-clean-100"])
    check_set(str(work / "data" / "dev_other"), truth["dev-other"])
    unlab = {**truth["train-clean-360"], **truth["train-other-500"]}
    check_set(str(work / "data" / "train_unlab"), unlab, text_name="text.unused")


def test_download_and_untar(corpus, tmp_path):
    root, truth = corpus
    site = tmp_path / "openslr"
    site.mkdir()
    md5 = fx.tar_gz(root, ["LibriSpeech/SPEAKERS.TXT", "LibriSpeech/dev-other"], str(site / "dev-other.tar.gz"))
    (site / "md5sum.txt").write_text(f"{md5}  dev-other.tar.gz\n{'0' * 32}  dev-clean.tar.gz\n")
    fx.tar_gz(root, ["LibriSpeech/SPEAKERS.TXT", "LibriSpeech/dev-clean"], str(site / "dev-clean.tar.gz"))
    script = os.path.join(REPO, "egs", "librispeech", "asr1", "local", "download_and_untar.sh")
    dl = tmp_path / "downloads"
    with fx.serve_dir(str(site)) as url:
        run = lambda part: subprocess.run(["bash", script, str(dl), url, part],  # noqa: E731
                                          capture_output=True, text=True, timeout=60)
        r = run("dev-other")
        assert r.returncode == 0, r.stderr
        assert (dl / "LibriSpeech" / "dev-other" / ".complete").exists()
        r = run("dev-other")
        assert r.returncode == 0 and "already present" in r.stdout
        # A corrupt download is removed, not extracted.
        r = run("dev-clean")
        assert r.returncode != 0 and "md5 mismatch" in r.stderr
        assert not (dl / "dev-clean.tar.gz").exists() and not (dl / "LibriSpeech" / "dev-clean").exists()
    out = str(tmp_path / "data")
    librispeech.prepare(str(dl), out, [], [], ["dev-other"])
    check_set(os.path.join(out, "dev_other"), truth["dev-other"])
