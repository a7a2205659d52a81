"""Global CMVN stats from the extraction jobs: each job's stats, summed by merge, equal a pass over feats.scp."""
import json
import os

import kaldiio
import numpy as np
import pytest

from bljust.bin import compute_cmvn, extract_feats
from bljust.features.cmvn import compute_stats, read_global_cmvn, stats_to_mean_istd
from bljust.features.extract import JOB_STATS_SUM, job_paths
from conftest import speechlike


@pytest.fixture
def data(make_data_dir, tmp_path):
    """Seven utterances of different lengths, one of them unreadable (a counted skip)."""
    entries = [(f"u{i}", speechlike(0.3 + 0.25 * i, seed=i)) for i in range(6)]
    entries.insert(3, ("u2x", str(tmp_path / "missing.wav")))
    return make_data_dir(entries)


def dump(data, out, nj, *extra):
    for j in range(1, nj + 1):
        assert extract_feats.main(["--data_dir", data, "--out_dir", f"{out}/data", "--job", str(j),
                                   "--nj", str(nj), *extra]) == 0
    return extract_feats.main(["--merge", "--data_dir", data, "--out_dir", f"{out}/data", "--nj", str(nj),
                               "--dest", out, "--max_fail_ratio", "0.5"])


def one_pass_and_summed(out, tmp_path):
    """cmvn.ark the old way (a pass over every matrix of feats.scp) and from the jobs' summed stats."""
    a, b = str(tmp_path / "one_pass.ark"), str(tmp_path / "summed.ark")
    assert compute_cmvn.main(["--feats_scp", f"{out}/feats.scp", "--out", a]) == 0
    assert compute_cmvn.main(["--stats", f"{out}/data/{JOB_STATS_SUM}", "--out", b]) == 0
    return a, b


@pytest.mark.parametrize("compress", ["false", "true"])
def test_one_job_gives_the_one_pass_stats_bit_for_bit(data, tmp_path, compress):
    out = str(tmp_path / "fb")
    assert dump(data, out, 1, "--compress", compress) == 0
    a, b = one_pass_and_summed(out, tmp_path)
    assert open(a, "rb").read() == open(b, "rb").read()
    # the unreadable utterance counts no frames; compressed stats are those of the decompressed matrices
    frames = sum(int(line.split()[1]) for line in open(f"{out}/utt2num_frames"))
    assert kaldiio.load_mat(b)[0, -1] == frames


@pytest.mark.parametrize("compress", ["false", "true"])
def test_jobs_stats_summed_equal_the_one_pass_stats(data, tmp_path, compress):
    out = str(tmp_path / "fb")
    assert dump(data, out, 3, "--compress", compress) == 0
    assert all(os.path.isfile(f"{out}/data/feats.{j}.cmvn") for j in (1, 2, 3))
    a, b = one_pass_and_summed(out, tmp_path)
    one, summed = kaldiio.load_mat(a), kaldiio.load_mat(b)
    np.testing.assert_allclose(summed, one, rtol=1e-13)  # float64 sums added in another grouping
    assert summed[0, -1] == one[0, -1]
    # what the trainer reads: the float32 mean and inverse std come out the same
    for x, y in zip(read_global_cmvn(a), read_global_cmvn(b)):
        np.testing.assert_array_equal(x, y)


def test_summed_stats_equal_a_single_job_of_the_same_data(data, tmp_path):
    assert dump(data, str(tmp_path / "one"), 1) == 0
    assert dump(data, str(tmp_path / "three"), 3) == 0
    x = kaldiio.load_mat(str(tmp_path / "one" / "data" / JOB_STATS_SUM))
    y = kaldiio.load_mat(str(tmp_path / "three" / "data" / JOB_STATS_SUM))
    np.testing.assert_allclose(x, y, rtol=1e-13)
    for u, v in zip(stats_to_mean_istd(x), stats_to_mean_istd(y)):
        np.testing.assert_array_equal(u, v)


def test_merge_refuses_job_stats_that_do_not_match_the_job(data, tmp_path, capfd):
    out = str(tmp_path / "fb")
    assert dump(data, out, 2) == 0
    stats = f"{out}/data/feats.2.cmvn"
    good = kaldiio.load_mat(stats)
    kaldiio.save_mat(stats, good * np.array([[1.0] * (good.shape[1] - 1) + [2.0], [1.0] * good.shape[1]]))
    capfd.readouterr()
    assert dump(data, out, 2) == 1  # the jobs are done (skipped); merge checks the stats
    err = capfd.readouterr().err
    assert "feats.2.cmvn" in err and "do not match the job" in err and "Traceback" not in err
    assert not os.path.exists(f"{out}/data/{JOB_STATS_SUM}")
    with open(stats, "wb") as f:
        f.write(b"\0Bgarbage")
    assert dump(data, out, 2) == 1
    assert "feats.2.cmvn" in capfd.readouterr().err
    os.unlink(stats)  # a lost stats file: the job is done again, not trusted
    assert dump(data, out, 2) == 0
    np.testing.assert_array_equal(kaldiio.load_mat(stats), good)


def test_jobs_without_stats_leave_no_sum_and_a_stale_sum_is_removed(data, tmp_path):
    """Jobs done by an earlier version (no stats in their marker): cmvn.ark then comes from feats.scp."""
    out = str(tmp_path / "fb")
    assert dump(data, out, 2) == 0
    assert os.path.isfile(f"{out}/data/{JOB_STATS_SUM}")
    done = job_paths(f"{out}/data/feats.1.scp")["done"]
    with open(done) as f:
        summary = json.load(f)
    del summary["cmvn_stats"]
    with open(done, "w") as f:
        json.dump(summary, f)
    assert dump(data, out, 2) == 0
    assert not os.path.exists(f"{out}/data/{JOB_STATS_SUM}")
    assert compute_stats(f"{out}/feats.scp")["global"][0, -1] > 0


def test_raw_jobs_write_no_stats(data, tmp_path):
    out = str(tmp_path / "raw")
    assert dump(data, out, 2, "--feats_type", "raw") == 0
    assert not any(f.endswith(".cmvn") for f in os.listdir(f"{out}/data"))


def test_compute_cmvn_stats_sums_several_files_and_refuses_bad_ones(tmp_path, capfd):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((20, 4)) + 1
    paths = []
    for name, m in (("a", x), ("b", y)):
        s = np.zeros((2, 5))
        s[0, :-1], s[1, :-1], s[0, -1] = m.sum(0), (m * m).sum(0), len(m)
        paths.append(str(tmp_path / f"{name}.cmvn"))
        kaldiio.save_mat(paths[-1], s)
    out = str(tmp_path / "cmvn.ark")
    assert compute_cmvn.main(["--stats", *paths, "--out", out]) == 0
    both = np.concatenate([x, y])
    np.testing.assert_allclose(kaldiio.load_mat(out), [list(both.sum(0)) + [50], list((both * both).sum(0)) + [0]])
    kaldiio.save_mat(str(tmp_path / "c.cmvn"), np.zeros((2, 7)))
    capfd.readouterr()
    assert compute_cmvn.main(["--stats", paths[0], str(tmp_path / "c.cmvn"), "--out", out]) == 1
    assert "c.cmvn: stats of dimension 6" in capfd.readouterr().err
    assert compute_cmvn.main(["--stats", str(tmp_path / "none.cmvn"), "--out", out]) == 1
    assert "none.cmvn" in capfd.readouterr().err
    assert compute_cmvn.main(["--stats", paths[0], "--feats_scp", paths[1], "--out", out]) == 1
    assert compute_cmvn.main(["--stats", paths[0], "--cmvn_type", "speaker", "--out", out]) == 1
