"""The three kinds of feature dir: float32 fbank arks, Kaldi compressed arks, and raw audio."""
import os

import kaldiio
import numpy as np
import pytest
import torch

from bljust.bin import compute_cmvn, extract_feats
from bljust.data.dataset import ASRDataset, FeatureReader, collate, sample_global_stats
from bljust.features.cmvn import compute_stats, read_global_cmvn
from bljust.features.fbank import Fbank, FbankOptions
from bljust.nets.frontend import FbankFrontend
from conftest import speechlike, write_wav

# On-device fbank (torch, batched) against the CPU fbank of the dump, in log-mel units
# (values range about -16..25): float32 rounding in another order of operations.
DEVICE_TOL = 1e-3
# Kaldi's 8-bit per-column compression of log-mel fbank: measured 0.05-0.1 on these
# fixtures (test/bench/bench_feats_kinds.py prints the figures on speech).
COMPRESS_TOL = 0.25


def dump(data, out, *extra, nj=1):
    assert extract_feats.main(["--data_dir", data, "--out_dir", f"{out}/data", "--name", "feats.1", *extra]) == 0
    conf = list(extra[extra.index("--fbank_conf"):][:2]) if "--fbank_conf" in extra else []
    assert extract_feats.main(["--merge", "--data_dir", data, "--out_dir", f"{out}/data", "--nj", str(nj),
                               "--dest", out, *conf]) == 0
    return out


@pytest.fixture
def corpus(make_data_dir, tmp_path):
    """Two recordings cut by segments into four utterances, and one whole-file utterance dir."""
    recs = {"r1": speechlike(2.0, 1), "r2": speechlike(1.5, 2)}
    seg = make_data_dir(sorted(recs.items()), segments=["r1-a r1 0.00 0.93", "r1-b r1 0.93 2.00",
                                                        "r2-a r2 0.10 0.77", "r2-b r2 0.80 -1"], name="seg")
    whole = make_data_dir([(f"u{i}", speechlike(0.4 + 0.3 * i, 10 + i)) for i in range(4)], name="whole")
    for d in (seg, whole):
        utts = [line.split()[0] for line in open(os.path.join(d, "segments" if d == seg else "wav.scp"))]
        with open(os.path.join(d, "text"), "w") as f:
            f.writelines(f"{u} a b\n" for u in utts)
        with open(os.path.join(d, "utt2spk"), "w") as f:
            f.writelines(f"{u} {u[:2]}\n" for u in utts)
    return seg, whole


def test_compressed_arks_are_kaldi_compressed_smaller_and_close(corpus, tmp_path):
    seg, _ = corpus
    plain = dump(seg, str(tmp_path / "plain"))
    comp = dump(seg, str(tmp_path / "comp"), "--compress", "true")
    a, b = kaldiio.load_scp(f"{plain}/feats.scp"), kaldiio.load_scp(f"{comp}/feats.scp")
    assert sorted(a) == sorted(b)
    err = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert 0 < err < COMPRESS_TOL
    for line in open(f"{comp}/feats.scp"):  # Kaldi's compressed-matrix header at every offset
        ark, off = line.split()[1].rsplit(":", 1)
        with open(ark, "rb") as f:
            f.seek(int(off))
            assert f.read(5) == b"\0BCM "
    size = lambda d: os.path.getsize(f"{d}/data/feats.1.ark")  # noqa: E731
    assert size(comp) < 0.35 * size(plain)
    assert open(f"{comp}/feats_type").read() == "fbank\n"
    # CMVN reads them unchanged
    assert compute_stats(f"{comp}/feats.scp")["global"][0, -1] == sum(m.shape[0] for m in a.values())


def test_raw_dir_lists_audio_and_counts_without_an_ark(corpus, tmp_path):
    seg, _ = corpus
    raw = dump(seg, str(tmp_path / "raw"), "--feats_type", "raw")
    assert not os.path.exists(f"{raw}/feats.scp") and not os.path.exists(f"{raw}/data/feats.1.ark")
    assert open(f"{raw}/feats_type").read() == "raw\n"
    n2s = dict(line.split() for line in open(f"{raw}/utt2num_samples"))
    assert n2s == {"r1-a": str(int(0.93 * 16000)), "r1-b": str(2 * 16000 - int(0.93 * 16000)),
                   "r2-a": str(int(0.77 * 16000) - 1600), "r2-b": str(24000 - 12800)}
    assert sorted(line.split()[0] for line in open(f"{raw}/wav.scp")) == ["r1", "r2"]
    assert len(open(f"{raw}/segments").readlines()) == 4


def test_raw_fbank_equals_the_dumped_fbank(corpus, tmp_path):
    """A model trained on a dump sees the same numbers from raw audio: segments, whole files, dither."""
    seg, whole = corpus
    conf = tmp_path / "fbank.yaml"
    conf.write_text("num_mel_bins: 40\ndither: 1.0\n")
    for d in (seg, whole):
        name = os.path.basename(d)
        fb = dump(d, str(tmp_path / f"fb_{name}"), "--fbank_conf", str(conf))
        raw = dump(d, str(tmp_path / f"raw_{name}"), "--fbank_conf", str(conf), "--feats_type", "raw")
        dumped, reader = kaldiio.load_scp(f"{fb}/feats.scp"), FeatureReader(raw)
        assert reader.raw and reader.feat_dim == 40
        assert reader.lengths() == {k: int(v) for k, v in (ln.split() for ln in open(f"{fb}/utt2num_frames"))}
        for k in dumped:
            np.testing.assert_array_equal(reader.load(k), dumped[k])


def test_device_frontend_equals_loader_fbank(corpus, tmp_path):
    seg, _ = corpus
    raw = dump(seg, str(tmp_path / "raw"), "--feats_type", "raw")
    for k in ("text",):
        assert os.path.isfile(f"{raw}/{k}")

    class Tok:
        def encode(self, s):
            return [1, 2]

    cpu = ASRDataset(raw, Tok())
    dev = ASRDataset(raw, Tok(), on_device=True)
    keys = sorted(cpu.lengths)
    b_cpu, b_dev = collate([cpu[k] for k in keys]), collate([dev[k] for k in keys])
    assert b_dev["feats"].shape[-1] == 1  # waveforms travel to the device
    feats, lens = FbankFrontend(cpu.reader.fbank_opts)(b_dev["feats"], b_dev["feat_lens"])
    assert lens.tolist() == b_cpu["feat_lens"].tolist() == [cpu.lengths[k] for k in keys]
    assert feats.shape == b_cpu["feats"].shape
    assert float((feats - b_cpu["feats"]).abs().max()) < DEVICE_TOL


@pytest.mark.parametrize("opts", [dict(), dict(snip_edges=False), dict(use_energy=True),
                                  dict(use_energy=True, raw_energy=False, htk_compat=True, num_mel_bins=23)])
def test_device_frontend_follows_kaldi_options(opts):
    o = FbankOptions(**opts)
    waves = [speechlike(s, i).astype(np.float32) for i, s in enumerate((1.0, 0.55, 0.026, 0.77))]
    ref = Fbank(o).compute_many(waves)
    x = torch.zeros(len(waves), max(len(w) for w in waves))
    for i, w in enumerate(waves):
        x[i, :len(w)] = torch.from_numpy(w)
    out, lens = FbankFrontend(o)(x, torch.tensor([len(w) for w in waves]))
    assert lens.tolist() == [r.shape[0] for r in ref]
    tol = DEVICE_TOL if o.snip_edges else 5e-3  # reflected edge frames: a few more roundings
    for i, r in enumerate(ref):
        np.testing.assert_allclose(out[i, :len(r)].numpy(), r, atol=tol, rtol=0)
        assert not out[i, len(r):].any()


def test_device_frontend_refuses_dither():
    with pytest.raises(ValueError, match="dither"):
        FbankFrontend(FbankOptions(dither=1.0))


def test_raw_dataset_batches_from_utt2num_samples_without_reading_audio(corpus, tmp_path):
    _, whole = corpus
    raw = dump(whole, str(tmp_path / "raw"), "--feats_type", "raw")
    for f in os.listdir(os.path.join(whole, "audio")):
        os.unlink(os.path.join(whole, "audio", f))
    ds = ASRDataset(raw, None, labeled=False)  # lengths come from utt2num_samples alone
    assert ds.lengths == {f"u{i}": 1 + (int((0.4 + 0.3 * i) * 16000) - 400) // 160 for i in range(4)}
    with pytest.raises(IOError, match="u0"):
        ds["u0"]


def test_merge_records_the_jobs_fbank_options(corpus, tmp_path):
    """feats_conf.yaml is what a raw folder's loader computes: the jobs' options, not the merge's."""
    _, whole = corpus
    conf = tmp_path / "fbank.yaml"
    conf.write_text("num_mel_bins: 40\n")
    out = str(tmp_path / "raw")
    assert extract_feats.main(["--data_dir", whole, "--out_dir", f"{out}/data", "--name", "feats.1",
                               "--feats_type", "raw", "--fbank_conf", str(conf)]) == 0
    assert extract_feats.main(["--merge", "--data_dir", whole, "--out_dir", f"{out}/data", "--nj", "1",
                               "--dest", out]) == 0  # no --fbank_conf here
    reader = FeatureReader(out)
    assert reader.feat_dim == 40 and reader.load("u0").shape[1] == 40


def test_raw_dir_without_its_fbank_options_is_refused(corpus, tmp_path):
    _, whole = corpus
    raw = dump(whole, str(tmp_path / "raw"), "--feats_type", "raw")
    os.unlink(f"{raw}/feats_conf.yaml")
    with pytest.raises(FileNotFoundError, match="feats_conf.yaml"):
        FeatureReader(raw)


def test_cmvn_from_a_sample_of_raw_audio(corpus, tmp_path):
    seg, _ = corpus
    fb = dump(seg, str(tmp_path / "fb"))
    raw = dump(seg, str(tmp_path / "raw"), "--feats_type", "raw")
    full = compute_stats(f"{fb}/feats.scp")["global"]
    stats, n = sample_global_stats(raw, 0)
    assert n == 4
    np.testing.assert_allclose(stats, full, rtol=1e-9)
    part, n = sample_global_stats(raw, 2, seed=3)
    assert n == 2 and 0 < part[0, -1] < full[0, -1]
    out = str(tmp_path / "cmvn.ark")
    assert compute_cmvn.main(["--data_dir", raw, "--num_utts", "2", "--seed", "3", "--out", out]) == 0
    np.testing.assert_allclose(read_global_cmvn(out)[0], part[0, :-1] / part[0, -1], rtol=1e-5)


def test_raw_and_compress_do_not_mix(corpus, tmp_path):
    seg, _ = corpus
    rc = extract_feats.main(["--data_dir", seg, "--out_dir", str(tmp_path / "x"), "--name", "feats.1",
                             "--feats_type", "raw", "--compress", "true"])
    assert rc == 1


def test_merge_refuses_jobs_of_different_kinds(corpus, tmp_path):
    _, whole = corpus
    out = str(tmp_path / "mix")
    for j, extra in ((1, []), (2, ["--compress", "true"])):
        assert extract_feats.main(["--data_dir", whole, "--out_dir", f"{out}/data", "--job", str(j), "--nj", "2",
                                   *extra]) == 0
    assert extract_feats.main(["--merge", "--data_dir", whole, "--out_dir", f"{out}/data", "--nj", "2",
                               "--dest", out]) == 1


def test_raw_segment_of_a_pipe_reads_like_a_file(make_data_dir, tmp_path):
    x = speechlike(1.2, 7)
    path = write_wav(str(tmp_path / "rec.wav"), x)
    a = make_data_dir([("rec", path)], segments=["s1 rec 0.2 0.9", "s2 rec 0.9 1.5"], name="file")
    b = make_data_dir([("rec", f"cat {path} |")], segments=["s1 rec 0.2 0.9", "s2 rec 0.9 1.5"], name="pipe")
    ra, rb = (FeatureReader(dump(d, str(tmp_path / f"raw_{os.path.basename(d)}"), "--feats_type", "raw"))
              for d in (a, b))
    for k in ("s1", "s2"):
        np.testing.assert_array_equal(ra.waveform(k), rb.waveform(k))
        np.testing.assert_array_equal(ra.load(k), rb.load(k))
    # the last segment was clipped to the recording (1.2 s) as the dump stage clips it
    assert len(ra.waveform("s2")) == int(1.2 * 16000) - int(0.9 * 16000)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run it on the GPU machine)")
def test_device_frontend_on_cuda_equals_loader_fbank_under_bf16_autocast():
    o = FbankOptions()
    waves = [speechlike(s, i).astype(np.float32) for i, s in enumerate((3.0, 1.55, 0.7, 2.2))]
    ref = Fbank(o).compute_many(waves)
    x = torch.zeros(len(waves), max(len(w) for w in waves))
    for i, w in enumerate(waves):
        x[i, :len(w)] = torch.from_numpy(w)
    fe = FbankFrontend(o).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):  # the frontend stays in float32 inside
        out, lens = fe(x.cuda(), torch.tensor([len(w) for w in waves]).cuda())
    assert out.dtype == torch.float32
    for i, r in enumerate(ref):
        np.testing.assert_allclose(out[i, :len(r)].cpu().numpy(), r, atol=DEVICE_TOL, rtol=0)
