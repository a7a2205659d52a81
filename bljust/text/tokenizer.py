"""Text <-> token ids through a SentencePiece model and its tokens.txt (bpe/unigram or char),
and training that model on the transcripts of a data dir (train_tokenizer).

tokens.txt lists <blank>, <unk>, then the model's pieces. The same text and options give
the same model bytes; an output whose recorded inputs match is kept (skipped).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
from typing import Iterable, List

import sentencepiece as spm
from typeguard import typechecked

from bljust.text.token_list import BLANK, UNK, read_token_list, token_index, write_token_list
from bljust.utils.fileio import atomic_write, iter_table

log = logging.getLogger(__name__)

WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁", which starts every word


class Tokenizer:
    """Ids are line indices of tokens.txt: 0 is `<blank>` (CTC), 1 is `<unk>`."""

    blank_id = 0
    unk_id = 1

    def __init__(self, model_path: str, token_list: List[str]) -> None:
        self.sp = spm.SentencePieceProcessor(model_file=model_path)
        self.token_list = list(token_list)
        self._index = token_index(self.token_list)
        if self._index.get(BLANK) != self.blank_id or self._index.get(UNK) != self.unk_id:
            raise ValueError(f"token list must start with {BLANK}, {UNK}")
        # SentencePiece id -> our id, once: a piece missing from tokens.txt, like the model's
        # own <unk>, becomes <unk>
        unk_sp = self.sp.unk_id()
        self._from_sp = [self.unk_id if i == unk_sp else self._index.get(self.sp.id_to_piece(i), self.unk_id)
                         for i in range(self.sp.get_piece_size())]

    @classmethod
    def from_dir(cls, token_dir: str) -> "Tokenizer":
        """Loads `bpe.model` and `tokens.txt` written by bljust.bin.train_tokenizer."""
        model = os.path.join(token_dir, "bpe.model")
        if not os.path.isfile(model):
            raise FileNotFoundError(f"no SentencePiece model {model}; run bljust.bin.train_tokenizer first")
        return cls(model, read_token_list(os.path.join(token_dir, "tokens.txt")))

    @property
    def vocab_size(self) -> int:
        return len(self.token_list)

    def tokens(self, text: str) -> List[str]:
        return self.sp.encode(text, out_type=str)

    def encode(self, text: str) -> List[int]:
        """Token ids of `text`; pieces not in tokens.txt (unseen characters) become <unk>."""
        table = self._from_sp
        return [table[i] for i in self.sp.encode(text)]

    def ids_to_tokens(self, ids: Iterable[int]) -> List[str]:
        return [self.token_list[int(i)] for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Words joined by single spaces; blanks are dropped, <unk> stays visible as `<unk>`."""
        pieces = [self.token_list[int(i)] for i in ids if int(i) != self.blank_id]
        words = "".join(f" {p} " if p == UNK else p for p in pieces).replace(WORD_BOUNDARY, " ")
        return " ".join(words.split())


@typechecked
def train_tokenizer(text: str, out_dir: str, token_type: str = "bpe", bpemode: str = "unigram", nbpe: int = 300,
                    character_coverage: float = 1.0) -> List[str]:
    """Trains the model into out_dir; returns the token list (skips work that is already done)."""
    if token_type not in ("bpe", "char"):
        raise ValueError(f"--token_type must be bpe or char, got '{token_type}'")
    if bpemode not in ("unigram", "bpe"):
        raise ValueError(f"--bpemode must be unigram or bpe, got '{bpemode}'")
    model_type = "char" if token_type == "char" else bpemode
    lines = [v for _, v, _ in iter_table(text, allow_empty_value=True) if v]
    if not lines:
        raise ValueError(f"{text}: no transcripts to train on")
    conf = {"model_type": model_type, "nbpe": nbpe if model_type != "char" else None,
            "character_coverage": character_coverage,
            "text_sha1": hashlib.sha1("\n".join(lines).encode("utf-8")).hexdigest()}
    done_path = os.path.join(out_dir, "train_tokenizer.json")
    tokens_path = os.path.join(out_dir, "tokens.txt")
    if os.path.isfile(done_path) and os.path.isfile(tokens_path) and os.path.isfile(os.path.join(out_dir, "bpe.model")):
        with open(done_path, encoding="utf-8") as f:
            if json.load(f) == conf:
                log.info("%s is up to date; skipping", out_dir)
                with open(tokens_path, encoding="utf-8") as t:
                    return t.read().split("\n")[:-1]
    model = io.BytesIO()
    args = dict(sentence_iterator=iter(lines), model_writer=model,
                model_type=model_type, character_coverage=character_coverage,
                # Determinism: every sentence in file order, one thread, and no file paths in the model.
                input_sentence_size=0, shuffle_input_sentence=False, num_threads=1,
                # <unk> is the only special piece; <blank> is added in tokens.txt, and CTC needs no <s>/</s>.
                unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
                normalization_rule_name="identity", minloglevel=2)
    if model_type == "char":
        args.update(vocab_size=1, use_all_vocab=True, hard_vocab_limit=False)
    else:
        # A small corpus may not support nbpe pieces: take what it has rather than fail.
        args.update(vocab_size=nbpe, hard_vocab_limit=False)
    spm.SentencePieceTrainer.train(**args)
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if i != sp.unk_id()]
    tokens = [BLANK, UNK] + pieces
    with contextlib.suppress(FileNotFoundError):
        os.unlink(done_path)
    with atomic_write(os.path.join(out_dir, "bpe.model"), "wb", encoding=None) as f:
        f.write(model.getvalue())
    write_token_list(tokens, tokens_path)
    with atomic_write(done_path) as f:
        json.dump(conf, f, indent=1)
    if model_type != "char" and len(pieces) + 1 < nbpe:
        log.warning("the text supports only %d pieces, fewer than --nbpe %d", len(pieces) + 1, nbpe)
    log.info("wrote %d tokens (%s) to %s", len(tokens), model_type, tokens_path)
    return tokens
