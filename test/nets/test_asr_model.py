"""Conformer-CTC model: shapes per subsampling, padding independence, SpecAugment train-only."""
import pytest
import torch

from bljust.nets.asr_model import ASRModel
from bljust.nets.specaug import SpecAugment


@pytest.mark.parametrize("rate", [4, 6, 8])
@pytest.mark.parametrize("impl", ["bljust", "torchaudio"])
def test_shapes_per_subsampling(rate, impl, tiny_conformer):
    enc_conf = dict(tiny_conformer, num_layers=2)
    torch.manual_seed(0)
    m = ASRModel(40, 11, encoder=dict(enc_conf, subsampling=rate, impl=impl)).eval()
    feats, lens = torch.randn(3, 101, 40), torch.tensor([101, 77, 50])
    enc, enc_lens = m.encode(feats, lens)
    assert enc.shape[0] == 3 and enc.shape[2] == 32
    assert enc.shape[1] == int(enc_lens.max())
    # roughly T / rate frames come out
    assert all(abs(int(e) - int(t) / rate) <= 3 for e, t in zip(enc_lens, lens))
    lp = m.ctc_log_probs(enc)
    assert lp.shape == (3, enc.shape[1], 11)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3, enc.shape[1]), atol=1e-5)
    loss, stats = m.train()(feats, lens, torch.randint(1, 11, (3, 4)), torch.tensor([4, 3, 2]))
    assert torch.isfinite(loss) and stats["batch_size"] == 3


def test_bad_subsampling_rate(tiny_conformer):
    enc_conf = dict(tiny_conformer, num_layers=2)
    with pytest.raises(ValueError, match="subsampling rate"):
        ASRModel(40, 11, encoder=dict(enc_conf, subsampling=5))


def test_output_does_not_depend_on_padding(tiny_conformer):
    enc_conf = dict(tiny_conformer, num_layers=2)
    torch.manual_seed(0)
    m = ASRModel(40, 11, encoder=enc_conf).eval()
    x = torch.randn(1, 60, 40)
    alone, n = m.encode(x, torch.tensor([60]))
    padded = torch.cat([x, torch.randn(1, 40, 40)], 1)  # garbage past the length
    batch, nb = m.encode(torch.cat([padded, torch.randn(1, 100, 40)]), torch.tensor([60, 100]))
    assert int(nb[0]) == int(n[0])
    assert torch.allclose(batch[0, : int(n[0])], alone[0], atol=1e-5)


def test_specaugment_only_in_training(tiny_conformer):
    enc_conf = dict(tiny_conformer, num_layers=2)
    torch.manual_seed(0)
    sa = SpecAugment(num_freq_masks=2, freq_mask_width=8, num_time_masks=2, time_mask_width=20,
                     time_mask_ratio=0.5, time_warp=3)
    x = torch.randn(4, 100, 40) + 10.0
    lens = torch.tensor([100, 90, 80, 70])
    assert torch.equal(sa.eval()(x, lens), x)
    y = sa.train()(x, lens)
    assert y.shape == x.shape and not torch.equal(y, x)
    assert (y == 0).any()  # masked regions are zeroed

    m = ASRModel(40, 11, encoder=enc_conf, specaug=dict(num_time_masks=2, time_mask_width=20, time_mask_ratio=0.5))
    m.eval()
    a, _ = m.encode(x, lens)
    b, _ = m.encode(x, lens)
    assert torch.equal(a, b)  # no augmentation (and no dropout) in eval mode
    m.train()
    c, _ = m.encode(x, lens)
    assert not torch.allclose(a, c)


def test_time_masks_stay_inside_the_utterance():
    torch.manual_seed(1)
    sa = SpecAugment(num_freq_masks=0, num_time_masks=3, time_mask_width=30, time_mask_ratio=0.2).train()
    x = torch.ones(8, 200, 10)
    lens = torch.full((8,), 50)
    y = sa(x, lens)
    masked = (y[:, :, 0] == 0).sum(1)
    assert int(masked.max()) <= 3 * 10  # each mask at most 0.2 * 50 frames
    assert bool((y[:, 60:] == 1).all())  # nothing masked far past the length
