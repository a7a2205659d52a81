"""Long audio: overlapping chunks joined on the encoder's frame grid, then one CTC search."""
import numpy as np
import pytest

from synth_asr import FS, random_text, synth

from bljust import Speech2Text
from bljust.features.fbank import FbankOptions, num_frames
from bljust.inference import _out_len, chunk_plan
from bljust.nets.subsampling import _LAYERS


@pytest.mark.parametrize("rate", [4, 6, 8])
@pytest.mark.parametrize("snip_edges", [True, False])
def test_chunks_tile_the_full_pass_frames_exactly(rate, snip_edges):
    opts = FbankOptions(snip_edges=snip_edges)
    layers = _LAYERS[rate]
    grid = int(np.prod([s for _, s in layers])) * opts.window_shift
    for n in [16000 * 5, 16000 * 31 + 7, 16000 * 61 + 12345, 16000 * 600 + 1]:
        plan = chunk_plan(n, opts, layers, chunk_s=10.0, overlap_s=2.0)
        total = _out_len(num_frames(n, opts), layers)
        assert plan[0].keep_from == 0 and plan[-1].keep_to == total and plan[-1].end == n
        for a, b in zip(plan, plan[1:]):
            assert a.keep_to == b.keep_from and b.start < a.end  # contiguous, overlapping
        for c in plan:
            assert c.start % grid == 0
            first = c.start // grid
            n_out = _out_len(num_frames(c.end - c.start, opts), layers)
            # the kept frames exist in the chunk, with context on both sides (except at the ends)
            assert first <= c.keep_from < c.keep_to <= first + n_out
            if c is not plan[0]:
                assert c.keep_from - first >= 4
            if c is not plan[-1]:
                assert first + n_out - c.keep_to >= 4


class _Tokens:
    blank_id = 0

    def decode(self, ids):
        return " ".join(map(str, ids))


@pytest.mark.parametrize("rate", [4, 6])
def test_joined_chunks_equal_one_pass_for_a_local_encoder(rate):
    """With an encoder that sees only nearby frames (subsampling convs, no attention, no positions),
    every kept frame of every chunk is computed from exactly the fbank frames of the full pass:
    the joined log-probs must equal the one-pass log-probs frame for frame (an off-by-one on the
    grid, a dropped or repeated frame at a seam fails this)."""
    import torch

    from bljust.inference import Speech2Text
    from bljust.nets.asr_model import ASRModel
    from bljust.train.config import load_config

    torch.manual_seed(0)
    enc = dict(load_config(None, [])["encoder"], d_model=16, num_layers=0, subsampling=rate)
    model = ASRModel(80, 12, encoder=enc).eval()
    model.encoder.pos.forward = lambda x: x  # no absolute positions: the encoder is shift-invariant
    rng = np.random.default_rng(0)
    x = np.concatenate([synth(random_text(rng, 3), rng) for _ in range(20)])[: 16000 * 47 + 123]
    from bljust.features.fbank import Fbank

    feats = torch.from_numpy(Fbank(FbankOptions())(x))[None]
    with torch.inference_mode():  # one pass over the whole recording, without Speech2Text
        enc, _ = model.encode(feats, torch.tensor([feats.shape[1]]))
        a = model.ctc_log_probs(enc)[0]
    chunked = Speech2Text(model, _Tokens(), FbankOptions(), {}, chunk_s=5.0, overlap_s=1.0, batch_size=3)
    b = chunked.log_probs([x])[0]
    assert len(chunk_plan(len(x), chunked.fbank_opts, chunked.layers, 5.0, 1.0)) > 8
    assert a.shape == b.shape
    assert (a[1:] - a[:-1]).abs().amax(dim=1).median() > 0.01  # frames differ: a shifted join would show
    torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)


def test_chunked_log_probs_have_the_full_pass_frame_count(tones_exp):
    _, exp = tones_exp
    full = Speech2Text.from_pretrained(exp, chunk_s=600.0)
    chunked = Speech2Text.from_pretrained(exp, chunk_s=4.0, overlap_s=1.5)
    x = np.concatenate([synth(random_text(np.random.default_rng(i), 3), np.random.default_rng(i)) for i in range(8)])
    a, b = full.log_probs([x])[0], chunked.log_probs([x])[0]
    assert a.shape == b.shape


def _word_errors(ref, hyp):
    """(substitutions, deletions, insertions) of the best word alignment."""
    d = np.zeros((len(ref) + 1, len(hyp) + 1), dtype=int)
    d[:, 0], d[0, :] = range(len(ref) + 1), range(len(hyp) + 1)
    for i in range(1, len(ref) + 1):
        for j in range(1, len(hyp) + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    i, j, s, dl, ins = len(ref), len(hyp), 0, 0, 0
    while i or j:
        if i and j and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            s, i, j = s + (ref[i - 1] != hyp[j - 1]), i - 1, j - 1
        elif i and d[i, j] == d[i - 1, j] + 1:
            dl, i = dl + 1, i - 1
        else:
            ins, j = ins + 1, j - 1
    return s, dl, ins


def test_long_concatenation_is_transcribed_without_dropped_or_duplicated_words(tones_exp, caplog):
    """40 utterances (about 100 s) in 5 s chunks with 2 s overlap: about 30 seams, many inside words.

    A word duplicated or lost at a seam is an insertion or a deletion. The tiny model, trained on
    1-3 word utterances, also misreads some letters when it sees a chunk cut out of a longer stream
    (substitutions; about 8% of the words here); those are the model's, not the join's, which the
    local-encoder test above checks frame for frame."""
    _, exp = tones_exp
    rng = np.random.default_rng(99)
    texts = [random_text(rng, int(rng.integers(1, 4))) for _ in range(40)]
    x = np.concatenate([synth(t, rng) for t in texts]).astype(np.int16)
    words = " ".join(texts).split()
    asr = Speech2Text.from_pretrained(exp, chunk_s=5.0, overlap_s=2.0)
    with caplog.at_level("INFO"):
        hyp = asr(x, FS).split()
    n_chunks = len(chunk_plan(len(x), asr.fbank_opts, asr.layers, 5.0, 2.0))
    assert n_chunks >= 25 and f"decoded in {n_chunks} chunks" in caplog.text
    subs, dels, ins = _word_errors(words, hyp)
    assert (dels, ins) == (0, 0), (words, hyp)
    assert subs <= 0.15 * len(words), (subs, len(words))
