"""TED-LIUM release 2 preparation on a miniature corpus in the openslr 19 layout."""
import importlib.util
import os
import subprocess
import sys

import pytest
import soundfile as sf

_spec = importlib.util.spec_from_file_location("egs_fixtures", os.path.join(os.path.dirname(__file__), "fixtures.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

from bljust.data.corpora import tedlium  # noqa: E402
from bljust.utils.fileio import FormatError  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GLM = os.path.join(REPO, "egs", "tedlium2", "asr1", "local", "tedlium2.glm")
TRAIN_TALKS = ["AlBaker_2009", "BeaStone_2011X", "Carl_2010"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ted"))
    fx.make_tedlium2(root)
    return root


def check_set(d, expected, text_name="text"):
    fx.check_data_dir(d, text_name)
    assert fx.table(os.path.join(d, text_name)) == {u: e[3] for u, e in expected.items()}
    assert fx.table(os.path.join(d, "utt2spk")) == {u: e[0] for u, e in expected.items()}
    assert fx.table(os.path.join(d, "segments")) == {
        u: f"{e[0]} {e[1]:.2f} {e[2]:.2f}" for u, e in expected.items()}
    wav = fx.table(os.path.join(d, "wav.scp"))
    assert set(wav) == {e[0] for e in expected.values()}
    for talk, path in wav.items():
        assert path.endswith(f"/{talk}.sph")
        info = sf.info(path)
        assert info.samplerate == fx.SR
        for utt, (t, start, end, _) in expected.items():
            if t == talk:
                assert end <= info.duration
                x, _ = sf.read(path, start=int(start * fx.SR), stop=int(end * fx.SR), dtype="int16")
                assert x.size == int(end * fx.SR) - int(start * fx.SR)


def stm_body(d):
    return [line for line in fx.read_lines(os.path.join(d, "stm")) if not line.startswith(";;")]


def test_all_labeled_kaldi_cleaning(corpus, tmp_path, caplog):
    out = str(tmp_path / "data")
    written = tedlium.prepare(corpus, out, glm=GLM)
    assert "skipped 1 segments that start after the end of their audio" in caplog.text
    assert sorted(os.path.basename(d) for d in written) == ["dev", "test", "train"]
    assert not os.path.exists(os.path.join(out, "train_unlab"))
    for s in ("train", "dev", "test"):
        check_set(os.path.join(out, s), fx.TED_EXPECTED[s])
        with open(os.path.join(out, s, "glm")) as f, open(GLM) as g:
            assert f.read() == g.read()
    # The scoring stm keeps ignored and emptied segments (sclite needs them), cleaned
    # like text, sorted by talk and time, with dev's labels mapped and channel A.
    assert stm_body(os.path.join(out, "train")) == [
        "AlBaker_2009 A AlBaker_2009 0.00 1.20 <o,f0,male> ignore_time_segment_in_scoring",
        "AlBaker_2009 A AlBaker_2009 1.20 3.50 <o,f0,male> hello world",
        "AlBaker_2009 A AlBaker_2009 3.50 5.17 <o,f0,male> <noise> so it's here",
        "AlBaker_2009 A AlBaker_2009 5.17 6.00 <o,f0,male>",
        "BeaStone_2011X A BeaStone_2011X 0.50 2.00 <o,f0,female> the people's <noise> choice",
        "BeaStone_2011X A BeaStone_2011X 2.00 4.35 <o,f0,female> read this",
        "Carl_2010 A Carl_2010 0.10 3.90 <o,f0,male> one more talk",
        "Carl_2010 A Carl_2010 4.20 4.90 <o,f0,male> after the audio ends",
    ]
    assert stm_body(os.path.join(out, "dev"))[0] == \
        "DanDennett_2002 A DanDennett_2002 0.29 1.99 <o,f0,male> a dev sentence"
    # A line without the optional label keeps its first word.
    assert stm_body(os.path.join(out, "test"))[-1] == "EveLee_2012 A EveLee_2012 2.80 2.95 <unk> word"
    assert fx.table(os.path.join(out, "test", "reco2file_and_channel")) == {"EveLee_2012": "EveLee_2012 A"}


@pytest.mark.parametrize("kw", [{"labeled_talks": 1}, {"labeled_talks": 2}, {"labeled_hours": 0.0005}])
def test_labeled_subset_by_talks(corpus, tmp_path, kw):
    out = str(tmp_path / "data")
    tedlium.prepare(corpus, out, glm=GLM, **kw)
    lab = fx.table(os.path.join(out, "train", "wav.scp"))
    unlab = fx.table(os.path.join(out, "train_unlab", "wav.scp"))
    assert sorted(lab) + sorted(unlab) != [] and not set(lab) & set(unlab)
    assert sorted(set(lab) | set(unlab)) == TRAIN_TALKS
    if "labeled_talks" in kw:
        assert len(lab) == kw["labeled_talks"]
    exp = fx.TED_EXPECTED["train"]
    check_set(os.path.join(out, "train"), {u: e for u, e in exp.items() if e[0] in lab})
    check_set(os.path.join(out, "train_unlab"), {u: e for u, e in exp.items() if e[0] in unlab}, "text.unused")
    assert {line.split()[0] for line in stm_body(os.path.join(out, "train"))} == set(lab)
    # Deterministic: the same request picks the same talks in another run.
    out2 = str(tmp_path / "data2")
    tedlium.prepare(corpus, out2, glm=GLM, **kw)
    assert fx.table(os.path.join(out2, "train", "wav.scp")) == lab


def test_bad_input_is_a_clear_error(tmp_path):
    fx.make_tedlium2(str(tmp_path))
    stm = tmp_path / "TEDLIUM_release2" / "test" / "stm" / "EveLee_2012.stm"
    with open(stm, "a") as f:
        f.write("EveLee_2012 1 EveLee_2012 2.90 2.10 <o,f0,female> backwards\n")
    with pytest.raises(FormatError, match=r"EveLee_2012.stm:4: segment times"):
        tedlium.prepare(str(tmp_path), str(tmp_path / "data"))
    with pytest.raises(ValueError, match="labeled_talks=9"):
        tedlium.choose_labeled_talks([], labeled_talks=9)


def test_shorten_sphere_needs_sph2pipe(tmp_path, monkeypatch):
    # libsndfile cannot decode shorten-compressed SPHERE: demand sph2pipe, or use it.
    path = tmp_path / "x.sph"
    header = b"NIST_1A\n   1024\nsample_coding -s26 pcm,embedded-shorten-v2.00\nend_head\n"
    path.write_bytes(header.ljust(1024, b" ") + b"\0" * 64)
    with pytest.raises(RuntimeError):
        sf.info(str(path))
    monkeypatch.setattr(tedlium.shutil, "which", lambda name: None)
    with pytest.raises(FormatError, match="sph2pipe"):
        tedlium._sph_entry(str(path))
    monkeypatch.setattr(tedlium.shutil, "which", lambda name: "/bin/" + name)
    assert tedlium._sph_entry(str(path)) == f"sph2pipe -f wav -p {path} |"


def test_data_sh(corpus, tmp_path):
    work = tmp_path / "asr1"
    fx.recipe_workdir(REPO, os.path.join("egs", "tedlium2", "asr1"), str(work))
    subprocess.run(["bash", "local/data.sh", "--datadir", corpus, "--download", "false",
                    "--python", sys.executable, "--labeled_talks", "2"],
                   cwd=work, check=True, capture_output=True, timeout=120)
    lab = fx.table(str(work / "data" / "train" / "wav.scp"))
    assert len(lab) == 2
    exp = fx.TED_EXPECTED["train"]
    check_set(str(work / "data" / "train_unlab"), {u: e for u, e in exp.items() if e[0] not in lab}, "text.unused")
    check_set(str(work / "data" / "dev"), fx.TED_EXPECTED["dev"])
    assert os.path.exists(work / "data" / "dev" / "glm")


def test_download_data(corpus, tmp_path):
    site = tmp_path / "openslr"
    site.mkdir()
    fx.tar_gz(corpus, ["TEDLIUM_release2"], str(site / "TEDLIUM_release2.tar.gz"))
    script = os.path.join(REPO, "egs", "tedlium2", "asr1", "local", "download_data.sh")
    dl = tmp_path / "downloads"
    with fx.serve_dir(str(site)) as url:
        r = subprocess.run(["bash", script, str(dl), url], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert (dl / "TEDLIUM_release2" / ".complete").exists()
        r = subprocess.run(["bash", script, str(dl), url], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "already present" in r.stdout
    out = str(tmp_path / "data")
    tedlium.prepare(str(dl), out)
    check_set(os.path.join(out, "test"), fx.TED_EXPECTED["test"])
