import pytest
import torch

from bljust.decode.ctc import greedy_search
from bljust.nets.superb import SuperbModel
from bljust.nets.upstream import Upstream

D, V = 32, 6


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_upstream(seed: int = 0) -> Upstream:
    torch.manual_seed(seed)
    return Upstream(dict(kind="hubert", extractor_mode="group_norm",
                         extractor_conv_layer_config=[(D, 10, 5), (D, 3, 2), (D, 2, 2)], extractor_conv_bias=False,
                         encoder_embed_dim=D, encoder_projection_dropout=0.1, encoder_pos_conv_kernel=16,
                         encoder_pos_conv_groups=4, encoder_num_layers=2, encoder_num_heads=4,
                         encoder_attention_dropout=0.1, encoder_ff_interm_features=64, encoder_ff_interm_dropout=0.1,
                         encoder_dropout=0.1, encoder_layer_norm_first=False, encoder_layer_drop=0.0))


def batch():
    g = torch.Generator().manual_seed(1)
    wavs = torch.randn(2, 3200, generator=g)
    wav_lens = torch.tensor([3200, 2400])
    ys = torch.tensor([[1, 2, 3, 4], [5, 1, 2, 0]])
    y_lens = torch.tensor([4, 3])
    return wavs, wav_lens, ys, y_lens


def make(task: str) -> SuperbModel:
    return SuperbModel(tiny_upstream(), task, V, proj_dim=16, lstm_dim=16, lstm_layers=2)


@pytest.mark.parametrize("task", ["asr", "pr"])
def test_only_weights_and_downstream_get_gradients(task):
    model = make(task).train()
    assert not model.upstream.training  # frozen upstream runs without dropout
    w = model.featurizer.normalized()
    torch.testing.assert_close(w, torch.full((3,), 1 / 3))
    loss, stats = model(*batch())
    loss.backward()
    assert stats["batch_size"] == 2 and stats["loss"] > 0
    assert all(p.grad is None for p in model.upstream.parameters())
    assert model.featurizer.weights.grad is not None and model.featurizer.weights.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.head.parameters())


@pytest.mark.parametrize("task", ["asr", "pr"])
def test_loss_decreases_and_weights_stay_a_distribution(task):
    model = make(task).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    up_before = {k: v.clone() for k, v in model.upstream.state_dict().items()}
    losses = []
    for _ in range(15):
        loss, _ = model(*batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]
    w = model.featurizer.normalized().detach()
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-6) and bool((w > 0).all())
    assert not torch.equal(w, torch.full((3,), 1 / 3))
    assert all(torch.equal(v, model.upstream.state_dict()[k]) for k, v in up_before.items())


def test_log_probs_feed_the_ctc_decoders_and_state_round_trips():
    model = make("pr").eval()
    wavs, wav_lens, _, _ = batch()
    logp, lens = model.log_probs(wavs, wav_lens)
    assert logp.shape == (2, int(lens.max()), V) and lens.tolist() == [159, 119]
    torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, logp.size(1)))
    hyps = greedy_search(logp, lens)
    assert len(hyps) == 2 and all(0 not in h[0].tokens for h in hyps)
    sd = model.downstream_state_dict()
    assert sd and not any(k.startswith("upstream.") for k in sd)
    other = make("pr")
    other.load_downstream_state_dict(sd)
    torch.testing.assert_close(other.eval().log_probs(wavs, wav_lens)[0], logp)


def test_unknown_task():
    with pytest.raises(ValueError):
        SuperbModel(tiny_upstream(), "sid", V)
