"""tokens.txt: one token per line, id = line number - 1; `<blank>` is id 0 and `<unk>` id 1."""
from __future__ import annotations

from typing import Dict, List, Sequence

from bljust.utils.fileio import atomic_write

BLANK = "<blank>"
UNK = "<unk>"


class TokenListError(ValueError):
    pass


def read_token_list(path: str) -> List[str]:
    """Reads and checks a token list; errors name the file and line."""
    tokens: List[str] = []
    seen: Dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            tok = line.rstrip("\n")
            if not tok or tok != tok.strip() or " " in tok:
                raise TokenListError(f"{path}:{lineno}: a token must be one non-empty word, got {tok!r}")
            if tok in seen:
                raise TokenListError(f"{path}:{lineno}: token {tok!r} already on line {seen[tok]}")
            seen[tok] = lineno
            tokens.append(tok)
    if tokens[:2] != [BLANK, UNK]:
        raise TokenListError(f"{path}: the first two tokens must be {BLANK} and {UNK}, got {tokens[:2]}")
    return tokens


def token_index(tokens: List[str]) -> Dict[str, int]:
    return {t: i for i, t in enumerate(tokens)}


def write_token_list(tokens: Sequence[str], path: str) -> None:
    """tokens.txt, one token a line, written atomically."""
    with atomic_write(path) as f:
        f.writelines(t + "\n" for t in tokens)
