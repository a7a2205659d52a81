import os
import shutil
import signal
import subprocess
import sys
import time

import kaldiio
import numpy as np
import pytest

from bljust.bin import extract_feats
from bljust.features.audio import iter_utterances
from bljust.features.extract import FeatureError, extract_job, job_paths, merge_jobs
from bljust.features.fbank import Fbank
from conftest import speechlike, write_wav

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_job(data, out, *extra):
    return extract_feats.main(["--data_dir", data, "--out_dir", f"{out}/data", "--name", "feats.1", *extra])


def merge(data, out, nj=1, max_fail_ratio="1"):
    """Merges the jobs; these tests let any share fail (the stage's own limit is tested on its own)."""
    return extract_feats.main(["--merge", "--data_dir", data, "--out_dir", f"{out}/data", "--nj", str(nj),
                               "--dest", out, "--max_fail_ratio", max_fail_ratio])


def failed_reasons(path):
    with open(path) as f:
        return dict(line.rstrip("\n").split(" ", 1) for line in f)


def test_features_readable_by_kaldiio_and_merged_sorted(make_data_dir, tmp_path):
    waves = {u: speechlike(0.3 + 0.2 * i, seed=i) for i, u in enumerate(["b", "a", "c-1", "c_1"])}
    data = make_data_dir(sorted(waves.items()))
    out = str(tmp_path / "fb")
    for j, utts in ((1, ["a", "b"]), (2, ["c-1", "c_1"])):
        extract_job(data, f"{out}/data/feats.{j}.ark", f"{out}/data/feats.{j}.scp", only=set(utts))
    assert merge(data, out, nj=2) == 0
    keys = [line.split()[0] for line in open(f"{out}/feats.scp")]
    assert keys == sorted(waves, key=str.encode)
    f = Fbank()
    n = dict(line.split() for line in open(f"{out}/utt2num_frames"))
    for utt, mat in kaldiio.load_scp(f"{out}/feats.scp").items():
        np.testing.assert_allclose(mat, f(waves[utt].astype(np.float32)), atol=1e-6)
        assert int(n[utt]) == mat.shape[0]
    assert open(f"{out}/feat_dim").read().strip() == "80"
    assert open(f"{out}/failed").read() == ""


def test_merge_copies_tables_of_utterances_with_features(make_data_dir, tmp_path):
    data = make_data_dir([("s1-a", speechlike(0.3, 0)), ("s1-b", str(tmp_path / "missing.wav")),
                          ("s2-c", speechlike(0.3, 1))])
    with open(os.path.join(data, "text"), "w") as f:
        f.write("s1-a hello there\ns1-b lost one\ns2-c bye\n")
    with open(os.path.join(data, "utt2spk"), "w") as f:
        f.write("s1-a s1\ns1-b s1\ns2-c s2\n")
    out = str(tmp_path / "fb")
    assert run_job(data, out) == 0 and merge(data, out) == 0
    assert open(f"{out}/text").read() == "s1-a hello there\ns2-c bye\n"
    assert open(f"{out}/spk2utt").read() == "s1 s1-a\ns2 s2-c\n"
    assert list(failed_reasons(f"{out}/failed")) == ["s1-b"]


def test_fbank_conf_yaml(make_data_dir, tmp_path):
    data = make_data_dir([("a", speechlike(0.5, 0))])
    conf = tmp_path / "fbank.yaml"
    conf.write_text("num_mel_bins: 40\nsnip_edges: false\n")
    out = str(tmp_path / "fb")
    assert run_job(data, out, "--fbank_conf", str(conf)) == 0 and merge(data, out) == 0
    assert kaldiio.load_scp(f"{out}/feats.scp")["a"].shape == (50, 40)
    conf.write_text("num_mel_bin: 40\n")
    assert run_job(data, str(tmp_path / "fb2"), "--fbank_conf", str(conf)) == 1


def test_pipes_and_segments(make_data_dir, tmp_path):
    rec = speechlike(3.0, seed=5)
    path = write_wav(str(tmp_path / "rec.flac"), rec, fmt="FLAC")
    entries = [("r1", f"cat {path} |"), ("r2", path)]
    if shutil.which("sox"):
        entries.append(("r3", f"sox {path} -t wav - |"))
    times = [(0.0, 0.8), (1.25, 2.5), (2.0, -1)]
    segs = [f"{r}-s{i} {r} {s} {e}" for r, _ in entries for i, (s, e) in enumerate(times)]
    data = make_data_dir(entries, segments=segs)
    cuts = {}
    for utt, x, reason in iter_utterances(data):
        assert reason == ""
        cuts[utt] = x
    assert len(cuts) == len(segs)
    for r, _ in entries:
        np.testing.assert_array_equal(cuts[f"{r}-s0"], rec[:12800])
        np.testing.assert_array_equal(cuts[f"{r}-s1"], rec[20000:40000])
        np.testing.assert_array_equal(cuts[f"{r}-s2"], rec[32000:])
    out = str(tmp_path / "fb")
    assert run_job(data, out) == 0 and merge(data, out) == 0
    assert len(kaldiio.load_scp(f"{out}/feats.scp")) == len(segs)


def test_bad_inputs_are_skipped_with_reasons(make_data_dir, tmp_path):
    good = speechlike(0.5, seed=2)
    d = tmp_path / "src"
    d.mkdir()
    corrupt = d / "corrupt.flac"
    write_wav(str(corrupt), good, fmt="FLAC")
    corrupt.write_bytes(corrupt.read_bytes()[:60] + b"\x00garbage" * 50)
    empty = d / "empty.wav"
    empty.write_bytes(b"")
    rate8k = write_wav(str(d / "r8k.wav"), good[:4000], fs=8000)
    entries = [("ok", good), ("missing", str(d / "nope.wav")), ("corrupt", str(corrupt)), ("empty", str(empty)),
               ("rate", rate8k), ("pipe", "false |"), ("dup", good), ("dup", good), ("tiny", good[:100])]
    data = make_data_dir(entries)
    out = str(tmp_path / "fb")
    assert run_job(data, out) == 0
    assert merge(data, out) == 0
    assert list(kaldiio.load_scp(f"{out}/feats.scp")) == ["ok"]
    why = failed_reasons(f"{out}/failed")
    assert set(why) == {"missing", "corrupt", "empty", "rate", "pipe", "dup", "tiny"}
    assert "not found" in why["missing"]
    assert "decode" in why["corrupt"]
    assert "empty" in why["empty"]
    assert "8000" in why["rate"] and "16000" in why["rate"]
    assert "'false'" in why["pipe"] and "exit status 1" in why["pipe"]
    assert "duplicate" in why["dup"] and "lines 7, 8" in why["dup"]
    assert "too short" in why["tiny"]
    # --strict turns the first bad utterance into an error naming it; --resample fixes the rate
    with pytest.raises(FeatureError, match="'missing'"):
        extract_job(data, str(tmp_path / "s.ark"), str(tmp_path / "s.scp"), strict=True)
    extract_job(data, str(tmp_path / "r.ark"), str(tmp_path / "r.scp"), allow_resample=True)
    assert "rate" in kaldiio.load_scp(str(tmp_path / "r.scp"))


def test_merge_refuses_incomplete_jobs(make_data_dir, tmp_path):
    data = make_data_dir([("a", speechlike(0.3, 0)), ("b", speechlike(0.3, 1))])
    out = str(tmp_path / "fb")
    extract_job(data, f"{out}/data/feats.1.ark", f"{out}/data/feats.1.scp", only={"a"})
    with pytest.raises(FeatureError, match="no .*feats.2.done"):
        merge_jobs(data, out, [f"{out}/data/feats.{j}.scp" for j in (1, 2)])
    with pytest.raises(FeatureError, match="neither features nor a recorded reason"):
        merge_jobs(data, out, [f"{out}/data/feats.1.scp"])


def test_killed_job_is_redone_and_done_job_skipped(make_data_dir, tmp_path):
    waves = [(f"u{i:03d}", speechlike(3.0, seed=i)) for i in range(30)]  # ark written every 10
    data = make_data_dir(waves)
    out = str(tmp_path / "fb")
    scp = f"{out}/data/feats.1.scp"
    args = ["--data_dir", data, "--ark", f"{out}/data/feats.1.ark", "--scp", scp]
    # Each utterance comes through a slow pipe, so the job is surely mid-way when killed.
    with open(os.path.join(data, "wav.scp"), "w") as f:
        f.writelines(f"{u} sleep 0.03; cat {data}/audio/{u}.wav |\n" for u, _ in waves)
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.Popen([sys.executable, "-m", "bljust.bin.extract_feats", *args], env=env,
                         stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    tmp = f"{out}/data/feats.1.ark.tmp"
    while not (os.path.exists(tmp) and os.path.getsize(tmp) > 0) and time.time() < deadline:
        time.sleep(0.02)
    assert os.path.getsize(tmp) > 0
    assert p.poll() is None, "the job finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not os.path.exists(scp) and not os.path.exists(job_paths(scp)["done"])
    assert merge(data, out) == 1  # nothing half-done is trusted
    assert extract_feats.main(args) == 0
    assert merge(data, out) == 0
    feats = kaldiio.load_scp(f"{out}/feats.scp")
    assert sorted(feats) == [u for u, _ in waves]
    assert all(feats[u].shape == (298, 80) for u, _ in waves)
    mtime = os.path.getmtime(f"{out}/data/feats.1.ark")
    assert extract_feats.main(args) == 0  # done: skipped, not rewritten
    assert os.path.getmtime(f"{out}/data/feats.1.ark") == mtime


def test_job_of_n_mode_covers_every_utterance(make_data_dir, tmp_path):
    data = make_data_dir([(f"u{i}", speechlike(0.3, seed=i)) for i in range(5)])
    out = str(tmp_path / "fb")
    for j in (1, 2, 3):
        assert extract_feats.main(["--data_dir", data, "--out_dir", f"{out}/data", "--job", str(j), "--nj", "3"]) == 0
    assert merge(data, out, nj=3) == 0
    assert len(kaldiio.load_scp(f"{out}/feats.scp")) == 5
