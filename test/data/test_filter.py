"""Filtering utterances a CTC model cannot train on (bljust.data.datadir_filter, bljust.bin.filter_data)."""
from __future__ import annotations

import os

import pytest
import torch

from bljust.bin import filter_data
from bljust.data.datadir import validate_data_dir
from bljust.data.datadir_filter import (ctc_min_frames, filter_data_dir, frames_after_subsampling,
                                        min_frames_for_subsampling)
from bljust.nets import subsampling as sub


@pytest.mark.parametrize("factor,expected", [(1, 1), (2, 3), (4, 7), (6, 11), (8, 15)])
def test_min_frames_for_subsampling(factor, expected):
    assert min_frames_for_subsampling(factor) == expected
    assert frames_after_subsampling(expected, factor) == 1
    assert frames_after_subsampling(expected - 1, factor) == 0


def test_chain_matches_the_encoder_frontend():
    for factor in (4, 6, 8):
        m = sub.Conv2dSubsampling(80, 16, rate=factor)
        out = m.output_lengths(torch.arange(0, 200)).tolist()
        assert out == [frames_after_subsampling(t, factor) for t in range(200)]
        assert out.index(1) == min_frames_for_subsampling(factor)  # first length the encoder accepts


def test_ctc_needs_a_blank_between_repeats():
    assert ctc_min_frames([5, 6, 7]) == 3
    assert ctc_min_frames([5, 5, 5, 6]) == 6
    assert ctc_min_frames([]) == 0


def write(path, name, rows):
    with open(os.path.join(path, name), "w") as f:
        f.write("".join(f"{k} {v}\n" if v != "" else f"{k}\n" for k, v in rows))


@pytest.fixture
def data(tmp_path):
    """u1 fine, u2 too short (6 < 7), u3 too long, u4 empty text, u5 3 tokens in 2 output frames,
    u6 without features."""
    d = str(tmp_path / "in")
    os.makedirs(d)
    frames = {"s-u1": 100, "s-u2": 6, "s-u3": 5000, "s-u4": 100, "s-u5": 11}
    text = {"s-u1": "a b", "s-u2": "a", "s-u3": "a", "s-u4": "", "s-u5": "a b c", "s-u6": "a"}
    utts = sorted(text)
    write(d, "text", [(u, text[u]) for u in utts])
    write(d, "utt2spk", [(u, "s") for u in utts])
    write(d, "spk2utt", [("s", " ".join(utts))])
    write(d, "wav.scp", [(u, f"{u}.wav") for u in utts])
    write(d, "feats.scp", [(u, f"feats.ark:{i * 100}") for i, u in enumerate(sorted(frames))])
    write(d, "utt2num_frames", sorted(frames.items()))
    write(str(tmp_path), "counts", [(u, len(text[u].split())) for u in utts])
    return d


def read_reasons(out):
    with open(os.path.join(out, "filtered.txt")) as f:
        return dict(line.split() for line in f)


def test_filter_counts_and_reasons(data, tmp_path):
    out = str(tmp_path / "out")
    rc = filter_data.main(["--subsampling", "4", "--max_frames", "3000",
                           "--token_counts", str(tmp_path / "counts"), data, out])
    assert rc == 0
    assert read_reasons(out) == {"s-u2": "too_short", "s-u3": "too_long", "s-u4": "empty_text",
                                 "s-u5": "ctc_infeasible", "s-u6": "no_features"}
    assert validate_data_dir(out) == ([], [])
    with open(os.path.join(out, "utt2num_frames")) as f:
        assert f.read() == "s-u1 100\n"


def test_min_frames_option_raises_the_floor(data, tmp_path):
    out = str(tmp_path / "out")
    stats = filter_data_dir(data, out, subsampling=6, min_frames=101)
    assert stats == {"no_features": 1, "too_short": 4}
    assert sorted(read_reasons(out)) == ["s-u1", "s-u2", "s-u4", "s-u5", "s-u6"]
    with open(os.path.join(out, "text")) as f:
        assert f.read() == "s-u3 a\n"


def test_missing_frame_counts_is_a_clear_error(data, tmp_path, capsys):
    os.unlink(os.path.join(data, "utt2num_frames"))
    assert filter_data.main([data, str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "utt2num_frames" in err and "missing" in err


def test_token_dir_counts_repeats(tmp_path):
    import sentencepiece as spm  # a dependency of bljust: a missing one is a failure, not a skip
    tok = tmp_path / "tokens"
    tok.mkdir()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(["aaa bbb", "ab ba"] * 10), minloglevel=2,
                                   model_prefix=str(tok / "bpe"), vocab_size=6, model_type="char")
    d = str(tmp_path / "in")
    os.makedirs(d)
    # "aaa" is 4 pieces (▁ a a a) and needs 6 CTC frames: x4 leaves 5 of 23 frames, 6 of 27.
    write(d, "text", [("s-1", "aaa"), ("s-2", "aaa")])
    write(d, "utt2spk", [("s-1", "s"), ("s-2", "s")])
    write(d, "spk2utt", [("s", "s-1 s-2")])
    write(d, "utt2num_frames", [("s-1", 23), ("s-2", 27)])
    out = str(tmp_path / "out")
    assert filter_data.main(["--subsampling", "4", "--token_dir", str(tok), d, out]) == 0
    assert read_reasons(out) == {"s-1": "ctc_infeasible"}


def test_driver_form_unlabeled_and_feat_dim(data, tmp_path):
    with open(os.path.join(data, "feat_dim"), "w") as f:
        f.write("80\n")
    out = str(tmp_path / "out")
    rc = filter_data.main(["--in_dir", data, "--out_dir", out, "--min_frames", "7", "--max_frames", "3000",
                           "--no_text"])
    assert rc == 0
    # with --no_text the empty transcript of s-u4 does not matter, and text is not carried
    assert read_reasons(out) == {"s-u2": "too_short", "s-u3": "too_long", "s-u6": "no_features"}
    assert not os.path.exists(os.path.join(out, "text"))
    with open(os.path.join(out, "feat_dim")) as f:
        assert f.read() == "80\n"
    assert validate_data_dir(out, no_text=True) == ([], [])
