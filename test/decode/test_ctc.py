"""CTC decoders against brute force: every label path enumerated and collapsed."""
import itertools
import math

import pytest
import torch

from bljust.decode.ctc import ctc_decode, greedy_search, prefix_beam_search


def collapse(path, blank=0):
    out, prev = [], None
    for s in path:
        if s != prev and s != blank:
            out.append(s)
        prev = s
    return tuple(out)


def exhaustive(lp):
    """Total log-prob of every output sequence, summing over all T^V paths."""
    T, V = lp.shape
    rows = lp.double().tolist()
    tot = {}
    for path in itertools.product(range(V), repeat=T):
        s = sum(rows[t][path[t]] for t in range(T))
        key = collapse(path)
        if key in tot:
            hi, lo = max(tot[key], s), min(tot[key], s)
            s = hi + math.log1p(math.exp(lo - hi))
        tot[key] = s
    return tot


def random_lp(T, V, gen, peaky=1.0):
    return torch.log_softmax(torch.randn(T, V, generator=gen) * peaky * 3, dim=-1)


@pytest.mark.parametrize("seed", range(40))
def test_beam_equals_exhaustive_search(seed):
    gen = torch.Generator().manual_seed(seed)
    T = 1 + seed % 5
    V = 2 + seed % 3
    lp = random_lp(T, V, gen)
    tot = exhaustive(lp)
    ranked = sorted(tot.items(), key=lambda kv: -kv[1])
    # A beam as wide as the number of distinct prefixes, no token pruning: exact.
    n_prefixes = sum((V - 1) ** n for n in range(T + 1))
    hyps = prefix_beam_search(lp[None], torch.tensor([T]), beam_size=n_prefixes, nbest=3, token_topk=0)[0]
    assert tuple(hyps[0].tokens) == ranked[0][0]
    assert hyps[0].score == pytest.approx(ranked[0][1], abs=1e-4)
    for h in hyps:  # every n-best score is the true total probability of its sequence
        assert h.score == pytest.approx(tot[tuple(h.tokens)], abs=1e-4)
    assert [tuple(h.tokens) for h in hyps] == [kv[0] for kv in ranked[: len(hyps)]]


@pytest.mark.parametrize("seed", range(60))
def test_beam_never_worse_than_greedy(seed):
    gen = torch.Generator().manual_seed(1000 + seed)
    T, V = 5, 4
    # Not a theorem for a pruned beam: on near-flat posteriors (randn*1.5) it can
    # lose a near-tie (2 cases in 300); on CTC-like peaky ones it never does.
    lp = random_lp(T, V, gen, peaky=1.0)
    tot = exhaustive(lp)
    g = greedy_search(lp[None])[0][0]
    b = prefix_beam_search(lp[None], beam_size=10)[0][0]
    # pruning drops some paths, so the beam's score is a lower bound of the truth
    assert b.score <= tot[tuple(b.tokens)] + 1e-4
    assert tot[tuple(b.tokens)] >= tot[tuple(g.tokens)] - 1e-6


def test_repeated_tokens_need_a_blank_between():
    # frames: a a blank a  -> "a a" ; a a a -> "a"
    eps = 1e-4
    def onehot(seq, V=3):
        m = torch.full((len(seq), V), eps)
        for t, s in enumerate(seq):
            m[t, s] = 1.0
        return (m / m.sum(-1, keepdim=True)).log()
    for seq, want in [([1, 1, 0, 1], [1, 1]), ([1, 1, 1], [1]), ([0, 2, 0, 2, 1], [2, 2, 1])]:
        lp = onehot(seq)[None]
        assert greedy_search(lp)[0][0].tokens == want
        assert prefix_beam_search(lp, beam_size=4)[0][0].tokens == want


def test_greedy_batch_respects_lengths_and_scores():
    gen = torch.Generator().manual_seed(0)
    lp = torch.log_softmax(torch.randn(3, 7, 5, generator=gen), -1)
    lens = torch.tensor([7, 4, 0])
    hyps = greedy_search(lp, lens)
    for b in range(3):
        L = int(lens[b])
        ids = lp[b, :L].argmax(-1).tolist()
        assert hyps[b][0].tokens == list(collapse(ids))
        assert hyps[b][0].score == pytest.approx(float(lp[b, :L].max(-1).values.sum()), abs=1e-5)


def test_batched_beam_equals_one_by_one():
    gen = torch.Generator().manual_seed(3)
    B, T, V = 4, 12, 6
    lp = torch.log_softmax(torch.randn(B, T, V, generator=gen) * 2, -1)
    lens = torch.tensor([12, 9, 3, 1])
    batch = prefix_beam_search(lp, lens, beam_size=5, nbest=3)
    for b in range(B):
        one = prefix_beam_search(lp[b : b + 1, : lens[b]], beam_size=5, nbest=3)[0]
        assert [h.tokens for h in one] == [h.tokens for h in batch[b]]
        assert [h.score for h in one] == pytest.approx([h.score for h in batch[b]], abs=1e-5)


def test_threshold_pruning_and_dispatch():
    gen = torch.Generator().manual_seed(5)
    lp = torch.log_softmax(torch.randn(2, 10, 8, generator=gen) * 4, -1)
    full = ctc_decode(lp, method="beam", beam_size=8, token_topk=0)
    pruned = ctc_decode(lp, method="beam", beam_size=8, prune_threshold=math.log(1e-3))
    assert [h[0].tokens for h in full] == [h[0].tokens for h in pruned]
    with pytest.raises(ValueError, match="unknown decode method"):
        ctc_decode(lp, method="viterbi")
    with pytest.raises(ValueError, match="lengths"):
        ctc_decode(lp, torch.tensor([11, 3]))
