import os

import pytest

from bljust.bin import train_tokenizer as train_tokenizer_bin
from bljust.text.token_list import read_token_list
from bljust.text.tokenizer import Tokenizer, train_tokenizer

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a speech recognition toolkit for semi supervised training",
    "bilevel training of the encoder with unlabeled speech",
    "she sells sea shells by the sea shore",
    "the lazy dog sleeps while the brown fox runs away",
    "it's a toolkit for the researcher's recipes",
] * 5


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "text"
    p.write_text("".join(f"utt{i:03d} {s}\n" for i, s in enumerate(SENTENCES)))
    return str(p)


@pytest.mark.parametrize("kind", [("bpe", "unigram", 60), ("bpe", "bpe", 60), ("char", "unigram", 0)])
def test_round_trip_and_token_list(text_file, tmp_path, kind):
    token_type, bpemode, nbpe = kind
    out = str(tmp_path / "tok")
    train_tokenizer(text_file, out, token_type, bpemode, nbpe or 10)
    tokens = read_token_list(os.path.join(out, "tokens.txt"))
    assert tokens[:2] == ["<blank>", "<unk>"] and "<s>" not in tokens and "</s>" not in tokens
    tok = Tokenizer.from_dir(out)
    assert (tok.blank_id, tok.unk_id, tok.vocab_size) == (0, 1, len(tokens))
    if token_type == "char":
        assert set(tokens[2:]) == set("".join(SENTENCES).replace(" ", "")) | {"\u2581"}
    else:
        assert len(tokens) == nbpe + 1
    for s in set(SENTENCES):
        ids = tok.encode(s)
        assert 0 not in ids and 1 not in ids
        assert tok.ids_to_tokens(ids) == tok.tokens(s)
        assert tok.decode(ids) == s
    assert tok.decode([0] + tok.encode("the dog") + [0]) == "the dog"  # blanks are dropped


def test_unknown_characters_map_to_unk(text_file, tmp_path):
    out = str(tmp_path / "tok")
    train_tokenizer(text_file, out, "char")
    tok = Tokenizer.from_dir(out)
    ids = tok.encode("the Zebra")  # "Z" never occurs in the training text
    assert tok.unk_id in ids
    assert tok.decode(ids) == "the <unk> ebra"


def test_deterministic_and_skips_when_done(text_file, tmp_path):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    for out in (a, b):
        assert train_tokenizer_bin.main(["--text", text_file, "--out_dir", out, "--nbpe", "50"]) == 0  # the command
    for name in ("bpe.model", "tokens.txt"):
        assert open(os.path.join(a, name), "rb").read() == open(os.path.join(b, name), "rb").read()
    mtime = os.path.getmtime(os.path.join(a, "bpe.model"))
    train_tokenizer(text_file, a, nbpe=50)
    assert os.path.getmtime(os.path.join(a, "bpe.model")) == mtime
    assert len(train_tokenizer(text_file, a, nbpe=40)) == 41  # new options: retrained
    assert len(read_token_list(os.path.join(a, "tokens.txt"))) == 41
    assert not [f for f in os.listdir(a) if f.startswith(".")]  # no temp files left behind


def test_empty_text_is_an_error(tmp_path):
    (tmp_path / "text").write_text("utt1\n")
    with pytest.raises(ValueError, match="no transcripts"):
        train_tokenizer(str(tmp_path / "text"), str(tmp_path / "o"))
    assert train_tokenizer_bin.main(["--text", str(tmp_path / "text"), "--out_dir", str(tmp_path / "o")]) == 1


def test_pieces_missing_from_tokens_txt_map_to_unk(text_file, tmp_path):
    out = str(tmp_path / "tok")
    train_tokenizer(text_file, out, nbpe=30)
    full = Tokenizer.from_dir(out)
    ids = full.encode(SENTENCES[0])
    dropped = full.token_list[ids[0]]
    trimmed = Tokenizer(os.path.join(out, "bpe.model"), [t for t in full.token_list if t != dropped])
    got = trimmed.encode(SENTENCES[0])
    assert got[0] == trimmed.unk_id
    assert trimmed.ids_to_tokens(got) == ["<unk>" if t == dropped else t for t in full.ids_to_tokens(ids)]
