"""Character and phoneme targets (SUPERB's ASR and PR tasks) and their token lists.

Characters are the letters of the words with "|" between words (as SUPERB's character
ASR); phonemes are the space-separated symbols of a `text.phn` line.
"""
from __future__ import annotations

from typing import Iterable, List, Sequence

from bljust.text.token_list import BLANK, UNK

WORD_SEP = "|"
UNITS = ("char", "phn")


def text_units(text: str, unit: str) -> List[str]:
    """The target units of one transcript: characters with '|' between words, or phonemes."""
    if unit == "char":
        return list(WORD_SEP.join(text.split()))
    if unit == "phn":
        return text.split()
    raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")


def units_to_text(units: Sequence[str], unit: str) -> str:
    """Inverse of text_units: words for characters, space-separated phonemes for phonemes."""
    if unit == "char":
        return " ".join("".join(units).replace(WORD_SEP, " ").split())
    return " ".join(units)


def units_token_list(transcripts: Iterable[str], unit: str) -> List[str]:
    """<blank>, <unk>, then every unit of the transcripts in byte order."""
    seen = set()
    for text in transcripts:
        seen.update(text_units(text, unit))
    return [BLANK, UNK] + sorted(seen - {BLANK, UNK})
