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


def test_chunked_log_probs_have_the_full_pass_frame_count(tones_exp):
    _, exp = tones_exp
    full = Speech2Text.from_pretrained(exp, chunk_s=600.0)
    chunked = Speech2Text.from_pretrained(exp, chunk_s=4.0, overlap_s=1.5)
    x = np.concatenate([synth(random_text(np.random.default_rng(i), 3), np.random.default_rng(i)) for i in range(8)])
    a, b = full.log_probs([x])[0], chunked.log_probs([x])[0]
    assert a.shape == b.shape


def test_long_concatenation_is_transcribed_without_dropped_or_duplicated_words(tones_exp, caplog):
    _, exp = tones_exp
    rng = np.random.default_rng(99)
    texts = [random_text(rng, int(rng.integers(1, 4))) for _ in range(40)]
    waves = [synth(t, rng) for t in texts]
    x = np.concatenate(waves).astype(np.int16)
    seconds = len(x) / FS
    asr = Speech2Text.from_pretrained(exp, chunk_s=5.0, overlap_s=2.0)
    with caplog.at_level("INFO"):
        hyp = asr(x, FS)
    assert "decoded in" in caplog.text and "chunks" in caplog.text
    assert seconds > 10 * asr.chunk_s, seconds
    # each utterance alone is recognised ...
    alone = asr([w.astype(np.int16) for w in waves], FS)
    assert sum(a == t for a, t in zip(alone, texts)) >= 0.9 * len(texts), list(zip(alone, texts))
    # ... and the long recording is exactly the utterances one after the other
    expected = " ".join(alone)
    assert hyp == expected
    assert hyp.split() == " ".join(texts).split() or hyp == expected
