"""Reading feats.scp entries: compressed arks bit-identical to kaldiio, everything else through it."""
import os

import kaldiio
import numpy as np
import pytest

from bljust.data import ark


def write(tmp_path, name, mats, method):
    scp = str(tmp_path / f"{name}.scp")
    kaldiio.save_ark(str(tmp_path / f"{name}.ark"), mats, scp=scp, compression_method=method)
    return dict(line.split() for line in open(scp))


def mats():
    rng = np.random.default_rng(0)
    out = {f"u{i}": (rng.standard_normal((t, 80)) * 3 + 10).astype(np.float32) for i, t in enumerate((1230, 57, 9))}
    out["flat"] = np.full((20, 80), 1.5, dtype=np.float32)  # every quantile equal
    out["spiky"] = np.where(rng.random((300, 80)) < 0.01, 1e4, 0.0).astype(np.float32)
    return out


def test_compressed_entries_equal_kaldiio_bit_for_bit_without_calling_it(tmp_path, monkeypatch):
    specs = write(tmp_path, "cm", mats(), 2)  # kSpeechFeature: "CM", as compress=true writes
    expected = {k: kaldiio.load_mat(v) for k, v in specs.items()}
    monkeypatch.setattr(ark.kaldiio, "load_mat", lambda spec: pytest.fail(f"fell back to kaldiio for {spec}"))
    for k, spec in specs.items():
        got = ark.load_mat(spec)
        assert got.dtype == np.float32 and got.shape == expected[k].shape, k
        assert np.array_equal(got, expected[k]), k
    assert np.abs(ark.load_mat(specs["u0"]) - mats()["u0"]).max() < 0.2  # it is still lossy compression


@pytest.mark.parametrize("method", [None, 3, 5])  # float32, and the two- and one-byte global formats
def test_other_entries_go_through_kaldiio(tmp_path, method):
    specs = write(tmp_path, f"m{method}", mats(), method)
    for k, spec in specs.items():
        assert np.array_equal(ark.load_mat(spec), kaldiio.load_mat(spec)), k


def test_pipes_and_slices_are_kaldiio_s(tmp_path, monkeypatch):
    specs = write(tmp_path, "cm", mats(), 2)
    seen = []
    monkeypatch.setattr(ark.kaldiio, "load_mat", lambda spec: seen.append(spec) or np.zeros((1, 1)))
    sliced = specs["u0"] + "[0:9]"
    piped = f"cat {tmp_path}/cm.ark |"
    ark.load_mat(sliced)
    ark.load_mat(piped)
    assert seen == [sliced, piped]


def test_a_truncated_compressed_ark_is_an_error_naming_the_entry(tmp_path):
    specs = write(tmp_path, "cm", {"a": mats()["u0"]}, 2)
    path = str(tmp_path / "cm.ark")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    with pytest.raises(ValueError, match=r"cm\.ark:\d+: truncated compressed matrix"):
        ark.load_mat(specs["a"])
