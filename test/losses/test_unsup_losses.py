"""CPC/InfoNCE and BEST-RQ: padding gets exactly zero gradient, and each loss can be optimised."""
import pytest
import torch

from bljust.losses.bestrq import BestRQLoss
from bljust.losses.cpc import CPCLoss
from bljust.losses.masking import span_mask
from bljust.nets.asr_model import ASRModel

def tiny_model(encoder):
    torch.manual_seed(0)
    return ASRModel(input_dim=20, vocab_size=10, encoder=encoder)


def make_loss(name):
    if name == "cpc":
        return CPCLoss(dim=32, num_steps=3, num_negatives=10, proj_dim=16)
    return BestRQLoss(dim=32, input_dim=20, codebook_size=64, codebook_dim=8, mask_prob=0.05, mask_span=8)


def batch():
    torch.manual_seed(1)
    lens = torch.tensor([120, 64, 37])
    feats = torch.randn(3, 120, 20)
    for i, n in enumerate(lens):
        feats[i, n:] = 1e3  # garbage in the padding must not matter
    return feats, lens


class Spy(torch.nn.Module):
    """Wraps the encoder to keep its output, so the test can read d loss / d h."""

    def __init__(self, enc):
        super().__init__()
        self.enc, self.h, self.lens = enc, None, None

    def forward(self, x, lens):
        h, hl = self.enc(x, lens)
        h.retain_grad()
        self.h, self.lens = h, hl
        return h, hl


@pytest.mark.parametrize("name", ["cpc", "bestrq"])
def test_padding_gets_exactly_zero_gradient(name, tiny_conformer):
    model, loss_fn = tiny_model(tiny_conformer), make_loss(name)
    model.encoder = Spy(model.encoder)
    feats, lens = batch()
    feats.requires_grad_(True)
    torch.manual_seed(2)
    loss, _ = loss_fn(model, feats, lens)
    loss.backward()
    for i, n in enumerate(lens):
        assert torch.count_nonzero(feats.grad[i, n:]) == 0
        assert torch.count_nonzero(model.encoder.h.grad[i, model.encoder.lens[i]:]) == 0
    assert torch.count_nonzero(feats.grad[2, :37]) > 0


@pytest.mark.parametrize("name", ["cpc", "bestrq"])
def test_padding_content_does_not_change_the_loss(name, tiny_conformer):
    model, loss_fn = tiny_model(tiny_conformer), make_loss(name)
    model.eval()
    feats, lens = batch()
    other = feats.clone()
    for i, n in enumerate(lens):
        other[i, n:] = -7.0
    torch.manual_seed(3)
    a, _ = loss_fn(model, feats, lens)
    torch.manual_seed(3)
    b, _ = loss_fn(model, other, lens)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["cpc", "bestrq"])
def test_loss_decreases_when_optimised(name, tiny_conformer):
    model, loss_fn = tiny_model(tiny_conformer), make_loss(name)
    feats, lens = batch()
    opt = torch.optim.Adam(list(model.parameters()) + list(loss_fn.parameters()), lr=3e-3)
    torch.manual_seed(4)
    values = []
    for _ in range(40):
        loss, _ = loss_fn(model, feats, lens)
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    assert sum(values[-5:]) / 5 < 0.8 * sum(values[:5]) / 5


def test_span_mask_stays_inside_utterances_and_covers_each():
    lens = torch.tensor([50, 9, 30])
    m = span_mask(lens, 50, prob=0.0, span=10, generator=torch.Generator().manual_seed(0))
    for i, n in enumerate(lens):
        assert not m[i, n:].any()
        assert m[i, :n].any()
    assert int(m[0].sum()) == 10


def test_bestrq_targets_are_frozen_and_deterministic():
    a, b = BestRQLoss(dim=8, input_dim=20, seed=5), BestRQLoss(dim=8, input_dim=20, seed=5)
    x = torch.randn(2, 40, 20)
    assert torch.equal(a.targets(x, 10), b.targets(x, 10))
    assert not a.projection.requires_grad and not a.codebook.requires_grad


def _cpc_predictions_after_changing_the_future(context, encoder):
    """Predictions made at each context's last frame, before and after the frames after it
    (the future part of every window) are replaced by noise."""
    model = tiny_model(encoder)
    model.eval()
    loss_fn = CPCLoss(dim=32, num_steps=3, num_negatives=10, proj_dim=16, context=context,
                      context_frames=40, future_frames=20)
    feats, lens = batch()
    wins = loss_fn.windows(lens)
    changed = feats.clone()
    for b, _, cut, end in wins:
        changed[b, cut:end] = torch.randn(end - cut, feats.size(2))
    if context == "segment":
        pa, pb = loss_fn.predictions(model, feats, lens)[0], loss_fn.predictions(model, changed, lens)[0]
        return wins, pa, pb
    # bidirectional: the prediction made at the frame of each cut, from the whole utterance
    ha, la = model.encode(feats, lens)
    hb, _ = model.encode(changed, lens)
    at = [(b, cut // 4 - 1) for b, _, cut, _ in wins]
    pa = torch.stack([loss_fn.predictor(ha[b, t]) for b, t in at])
    pb = torch.stack([loss_fn.predictor(hb[b, t]) for b, t in at])
    return wins, pa, pb


def test_cpc_segment_context_never_sees_the_future_it_predicts(tiny_conformer):
    wins, before, after = _cpc_predictions_after_changing_the_future("segment", tiny_conformer)
    # 120 frames hold two 60-frame windows, 64 frames one; 37 frames one cut at 2/3
    assert [(b, s, c, e) for b, s, c, e in wins] == [(0, 0, 40, 60), (0, 60, 100, 120), (1, 0, 40, 60),
                                                      (2, 0, 24, 37)]
    assert torch.equal(before, after)


def test_cpc_bidirectional_context_does_see_the_future(tiny_conformer):
    """The legacy variant fails the same check: that is what the segment context fixes."""
    _, before, after = _cpc_predictions_after_changing_the_future("bidirectional", tiny_conformer)
    assert not torch.allclose(before, after)



def test_cpc_segment_distractors_sit_where_the_target_sits():
    """Each prediction's distractors are the same future frame (offset k) of other windows, so a
    frame's place in its separately encoded segment cannot tell the target apart; a step at
    which only one window has a target makes no prediction."""
    loss_fn = CPCLoss(dim=32, num_steps=3, num_negatives=40, proj_dim=16, context_frames=40, future_frames=20)
    lf, t = torch.tensor([5, 5, 2, 1, 5]), 5
    torch.manual_seed(0)
    w, k, cand = loss_fn.candidates(lf, t)
    assert sorted(zip(w.tolist(), k.tolist())) == [(a, b) for a in range(5) for b in range(3) if b < lf[a]]
    assert cand.shape == (w.numel(), 41) and torch.equal(cand[:, 0], w * t + k)
    win, off = cand // t, cand % t
    assert torch.equal(off, k.unsqueeze(1).expand_as(off))           # the target's offset, always
    assert (win[:, 1:] != w.unsqueeze(1)).all()                       # from another window
    assert (off < lf[win]).all()                                      # a frame that exists
    first = win[(w == 0) & (k == 0), 1:]
    assert set(first.flatten().tolist()) == {1, 2, 3, 4}              # every other window can be drawn
    assert set(win[(w == 0) & (k == 2), 1:].flatten().tolist()) == {1, 4}
    w1, k1, _ = loss_fn.candidates(torch.tensor([3, 1]), 3)
    assert w1.tolist() == [0, 1] and k1.tolist() == [0, 0]            # steps 1 and 2: one window only
    w2, _, c2 = loss_fn.candidates(torch.tensor([4]), 4)
    assert w2.numel() == 0 and c2.shape == (0, 41)
