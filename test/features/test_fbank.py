import shutil
import subprocess

import numpy as np
import pytest
import torch
from torchaudio.compliance import kaldi

from bljust.features.audio import read_audio, resample
from bljust.features.fbank import Fbank, FbankOptions, num_frames
from conftest import speechlike

OPTION_SETS = [
    {},
    {"snip_edges": False},
    {"num_mel_bins": 40, "use_energy": True},
    {"use_energy": True, "raw_energy": False, "htk_compat": True, "window_type": "hamming", "preemphasis": 0.0,
     "low_freq": 60.0, "high_freq": -400.0},
    {"num_mel_bins": 23, "remove_dc_offset": False, "frame_length_ms": 20.0, "frame_shift_ms": 5.0,
     "window_type": "hanning", "round_to_power_of_two": False},
    {"sample_rate": 8000, "num_mel_bins": 40, "high_freq": 3800.0, "snip_edges": False},
]


def torchaudio_fbank(x: np.ndarray, o: FbankOptions) -> np.ndarray:
    return kaldi.fbank(torch.from_numpy(x)[None], sample_frequency=o.sample_rate, num_mel_bins=o.num_mel_bins,
                       frame_length=o.frame_length_ms, frame_shift=o.frame_shift_ms, dither=0.0,
                       preemphasis_coefficient=o.preemphasis, remove_dc_offset=o.remove_dc_offset,
                       window_type=o.window_type, round_to_power_of_two=o.round_to_power_of_two,
                       low_freq=o.low_freq, high_freq=o.high_freq, use_energy=o.use_energy,
                       raw_energy=o.raw_energy, energy_floor=o.energy_floor, htk_compat=o.htk_compat,
                       use_log_fbank=o.use_log_fbank, use_power=o.use_power, snip_edges=o.snip_edges).numpy()


@pytest.mark.parametrize("conf", OPTION_SETS)
def test_matches_torchaudio_kaldi_fbank(conf):
    o = FbankOptions.from_dict(conf)
    x = speechlike(2.3, seed=1, fs=o.sample_rate).astype(np.float32) + 300.0  # a DC offset too
    ours = Fbank(o)(x)
    ref = torchaudio_fbank(x, o)
    assert ours.shape == ref.shape == (num_frames(len(x), o), o.feat_dim)
    assert ours.dtype == np.float32
    assert np.abs(ours - ref).max() <= 1e-3


@pytest.mark.parametrize("conf", [{}, {"dither": 1.0, "use_energy": True}, {"snip_edges": False}])
def test_result_does_not_depend_on_batching(conf):
    """Batches of utterances, and long inputs cut into windows of frames, give the same features."""
    o = FbankOptions.from_dict(conf)
    waves = [speechlike(s, seed=i).astype(np.float32) for i, s in enumerate([0.5, 1.7, 0.01, 0.025, 0.3])]
    keys = [f"u{i}" for i in range(len(waves))]
    alone = [Fbank(o)(w, k) for w, k in zip(waves, keys)]
    small = Fbank(o)
    small.chunk_frames, small.chunks_per_window = 7, 3  # windows of 21 frames cut across utterances
    for f in (Fbank(o), small):
        together = f.compute_many(waves, keys)
        for a, b in zip(together, alone):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    if o.snip_edges:
        assert alone[2].shape == (0, o.feat_dim)  # shorter than one frame
        assert alone[3].shape == (1, o.feat_dim)


def test_dither_is_seeded_per_utterance():
    f = Fbank(FbankOptions(dither=1.0))
    x = np.zeros(8000, np.float32)  # digital silence: only dither makes it non-constant
    a, b, c = f(x, "utt1"), f(x, "utt1"), f(x, "utt2")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.isfinite(a).all() and a.std() > 0.1


def test_unknown_option_is_an_error():
    with pytest.raises(ValueError, match="num_mel_bin"):
        FbankOptions.from_dict({"num_mel_bin": 80})


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_real_speech_is_as_accurate_as_torchaudio(tmp_path):
    """On speech with digital silence, the few bins holding ~1e-9 of a frame's energy are float32
    rounding noise in any implementation: judge against torchaudio run in float64."""
    wav = str(tmp_path / "s.wav")
    subprocess.run(["espeak-ng", "-w", wav, "speech recognition with bilevel training"], check=True)
    x, rate = read_audio(wav)
    x = resample(x, rate, 16000)
    for conf in ({}, {"snip_edges": False}):
        o = FbankOptions.from_dict(conf)
        ours = Fbank(o)(x)
        ref32 = torchaudio_fbank(x, o)
        ref64 = torchaudio_fbank(x.astype(np.float64), o)
        assert np.quantile(np.abs(ours - ref32), 0.999) <= 1e-3
        assert np.abs(ours - ref64).max() <= 2 * np.abs(ref32 - ref64).max() + 1e-4
