"""The batching and padding that the feature and the waveform datasets share."""
import random

import numpy as np
import pytest
import torch

from bljust.data.batching import bucket_batches, make_batches, pad_list


def former_wav_bucketing(lengths, max_samples, max_batch, seed=None):
    """The waveform datasets' own bucketing before they shared make_batches (kept as the reference)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches, cur = [], []
    for i in order:
        if cur and (len(cur) + 1 > max_batch or (len(cur) + 1) * lengths[i] > max_samples):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    if seed is not None:
        random.Random(seed).shuffle(batches)
    return batches


@pytest.mark.parametrize("seed", [None, 0, 7])
@pytest.mark.parametrize("max_samples,max_batch", [(16000, 4), (50000, 32), (3000, 2)])
def test_bucket_batches_are_the_waveform_batches_they_replaced(seed, max_samples, max_batch):
    rng = np.random.default_rng(1)
    lengths = [int(x) for x in rng.integers(400, 20000, size=57)]
    lengths[5] = lengths[9] = lengths[11]  # ties
    assert bucket_batches(lengths, max_samples, max_batch, seed) == former_wav_bucketing(lengths, max_samples,
                                                                                           max_batch, seed)


def test_feature_batches_cut_longest_first_within_bins():
    lengths = {f"u{i}": n for i, n in enumerate([100, 90, 90, 40, 30, 10])}
    batches = make_batches(lengths, batch_bins=200)
    assert batches == [["u0", "u1"], ["u2", "u3"], ["u4", "u5"]]
    assert make_batches(lengths, batch_bins=200, longest_first=False) == [["u5", "u4", "u3"], ["u1", "u2"], ["u0"]]


def test_pad_list_features_waveforms_and_ids():
    feats, flens = pad_list([np.ones((3, 2), np.float32), np.ones((5, 2), np.float32)])
    assert feats.shape == (2, 5, 2) and flens.tolist() == [3, 5] and flens.dtype == torch.long
    assert feats[0, 3:].abs().sum() == 0 and feats.dtype == torch.float32
    wavs, lens = pad_list([torch.ones(5), torch.ones(3)])
    assert wavs.shape == (2, 5) and lens.tolist() == [5, 3] and wavs[1, 3:].abs().sum() == 0
    ys, ylens = pad_list([torch.tensor([], dtype=torch.long)] * 2, min_len=1)
    assert ys.shape == (2, 1) and ys.dtype == torch.long and ylens.tolist() == [0, 0]
    with pytest.raises(ValueError, match="empty batch"):
        pad_list([])
