"""Text <-> token ids through a SentencePiece model and its tokens.txt (bpe/unigram or char)."""
from __future__ import annotations

import os
from typing import Iterable, List

import sentencepiece as spm

from bljust.text.token_list import BLANK, UNK, read_token_list, token_index

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
