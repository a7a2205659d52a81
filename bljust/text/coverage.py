"""What a tokenizer cannot represent: words and characters of a text that become <unk>.

A character the SentencePiece model never saw is mapped to <unk> when text is encoded
for training or scoring; without a count this loss is silent. Reported per set at token
training (stage 5) and at training start.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, List, Tuple

from bljust.utils.fileio import iter_table

log = logging.getLogger(__name__)


@dataclass
class Coverage:
    name: str
    num_words: int = 0
    num_chars: int = 0
    oov_words: Counter = field(default_factory=Counter)
    oov_chars: Counter = field(default_factory=Counter)

    def summary(self, examples: int = 5) -> str:
        if not self.oov_words:
            return f"{self.name}: every word and character is covered by the tokenizer ({self.num_words} words)"
        n_w, n_c = sum(self.oov_words.values()), sum(self.oov_chars.values())

        def top(c: Counter) -> str:
            return ", ".join(f"'{k}' x{v}" for k, v in c.most_common(examples))
        return (f"{self.name}: {n_w} of {self.num_words} words ({100.0 * n_w / max(self.num_words, 1):.2f}%) and "
                f"{n_c} of {self.num_chars} characters become <unk> ({len(self.oov_words)} distinct words: "
                f"{top(self.oov_words)}; {len(self.oov_chars)} distinct characters: {top(self.oov_chars)})")


def text_coverage(sp, lines: Iterable[str], name: str) -> Coverage:
    """Coverage of `lines` by a sentencepiece processor `sp` (its unk id marks what it cannot represent)."""
    cov = Coverage(name)
    unk = sp.unk_id()
    seen_chars = {}
    for line in lines:
        for word in line.split():
            cov.num_words += 1
            cov.num_chars += len(word)
            if unk not in sp.encode(word):
                continue
            cov.oov_words[word] += 1
            for ch in word:
                if ch not in seen_chars:
                    seen_chars[ch] = unk in sp.encode(ch)
                if seen_chars[ch]:
                    cov.oov_chars[ch] += 1
    return cov


def text_file_coverage(sp, path: str, name: str = "") -> Coverage:
    lines = [v for _, v, _ in iter_table(path, allow_empty_value=True)]
    return text_coverage(sp, lines, name or os.path.dirname(path) or path)


def report_coverage(sp, named_paths: List[Tuple[str, str]]) -> List[Coverage]:
    """Logs one line per text file (a warning where something becomes <unk>); returns the coverages."""
    out = []
    for name, path in named_paths:
        cov = text_file_coverage(sp, path, name)
        (log.warning if cov.oov_words else log.info)("tokenizer coverage of %s", cov.summary())
        out.append(cov)
    return out
