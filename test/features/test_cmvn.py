import kaldiio
import numpy as np
import pytest

from bljust.bin import compute_cmvn
from bljust.features.cmvn import read_global_cmvn


@pytest.fixture
def feats(tmp_path):
    rng = np.random.default_rng(0)
    mats = {f"s{i % 2}-u{i}": (rng.standard_normal((20 + i, 5)) * (i + 1) + i).astype(np.float32) for i in range(6)}
    mats["s0-u9"] = np.full((7, 5), 3.0, np.float32)
    mats["s0-u9"][:, 1:] = rng.standard_normal((7, 4))
    scp = str(tmp_path / "feats.scp")
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/feats.ark,{scp}") as w:
        for k in sorted(mats):
            w(k, mats[k])
    (tmp_path / "utt2spk").write_text("".join(f"{k} {k.split('-')[0]}\n" for k in sorted(mats)))
    return mats, scp


def kaldi_stats(x):
    x = x.astype(np.float64)
    return np.stack([np.append(x.sum(0), len(x)), np.append((x * x).sum(0), 0.0)])


def test_global_stats_equal_numpy(feats, tmp_path):
    mats, scp = feats
    out = str(tmp_path / "cmvn.ark")
    assert compute_cmvn.main(["--feats_scp", scp, "--out", out]) == 0
    allf = np.concatenate(list(mats.values()))
    stats = kaldiio.load_mat(out)
    assert stats.shape == (2, 6)
    np.testing.assert_allclose(stats, kaldi_stats(allf), rtol=1e-10)
    mean, istd = read_global_cmvn(out)
    assert mean.dtype == istd.dtype == np.float32
    np.testing.assert_allclose(mean, allf.mean(0), rtol=1e-5)
    np.testing.assert_allclose(istd, 1 / allf.astype(np.float64).std(0), rtol=1e-4)


def test_per_speaker_stats(feats, tmp_path):
    mats, scp = feats
    out = str(tmp_path / "cmvn_spk.ark")
    assert compute_cmvn.main(["--feats_scp", scp, "--out", out, "--utt2spk", str(tmp_path / "utt2spk")]) == 0
    got = kaldiio.load_scp(str(tmp_path / "cmvn_spk.scp"))
    assert sorted(got) == ["s0", "s1"]
    for spk in ("s0", "s1"):
        x = np.concatenate([m for k, m in mats.items() if k.startswith(spk)])
        np.testing.assert_allclose(got[spk], kaldi_stats(x), rtol=1e-10)


def test_std_is_floored(tmp_path):
    stats = kaldi_stats(np.array([[1.0, 2.0], [1.0, 4.0]]))
    kaldiio.save_mat(str(tmp_path / "c.ark"), stats)
    mean, istd = read_global_cmvn(str(tmp_path / "c.ark"))
    np.testing.assert_allclose(mean, [1.0, 3.0])
    assert np.isfinite(istd).all() and istd[0] == pytest.approx(1e3) and istd[1] == pytest.approx(1.0)


def test_missing_utt2spk_entry_is_an_error(feats, tmp_path):
    _, scp = feats
    (tmp_path / "utt2spk").write_text("s0-u0 s0\n")
    assert compute_cmvn.main(["--feats_scp", scp, "--out", str(tmp_path / "x.ark"),
                              "--utt2spk", str(tmp_path / "utt2spk")]) == 1
