"""sclite's trn files, and the text normalisations scored from them.

A trn line is `word word ... (spk-utt)`. We write the id as `<spk>-<utt>` and
score with `sclite -i rm`, which takes everything before the FIRST '-' as the
speaker: so '-' inside the speaker id is written as '_' (a LibriSpeech speaker
"103-1240" is grouped as "103_1240", not "103"). The utterance id is kept as is;
sclite lowercases ids in its reports. Without utt2spk the utterance id doubles as
the speaker (one "speaker" per utterance, as ESPnet does with `(utt-utt)`).

CER scores characters with a word boundary written as the token <space> (as
ESPnet does); TER scores the tokenizer's tokens.

stm files (NIST segment time marks: `file channel speaker start end [<label>] words`)
are read by read_stm here, for scoring (stm_to_text) and for corpus preparation
(TED-LIUM) alike.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

from bljust.utils.fileio import FormatError, atomic_write, read_table

SPACE = "<space>"
log = logging.getLogger(__name__)


def trn_id(utt: str, spk: Optional[str] = None) -> str:
    return f"{(spk or utt).replace('-', '_')}-{utt}"


def write_trn(path: str, texts: Mapping[str, str], utt2spk: Optional[Mapping[str, str]] = None) -> None:
    """Writes `text (spk-utt)` lines in C order of utterance id, atomically."""
    with atomic_write(path) as f:
        for utt in sorted(texts, key=lambda u: u.encode("utf-8")):
            words = " ".join(texts[utt].split())
            spk = utt2spk.get(utt) if utt2spk else None
            f.write(f"{words} ({trn_id(utt, spk)})\n" if words else f"({trn_id(utt, spk)})\n")


def read_trn(path: str) -> Dict[str, str]:
    """trn id -> text; a line without a trailing (id) is a FormatError naming the line."""
    out: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            m = re.match(r"^(.*?)\s*\(([^()\s]+)\)\s*$", line.rstrip("\n"))
            if not m:
                raise FormatError(path, lineno, "no '(id)' at the end of the line")
            out[m.group(2)] = m.group(1).strip()
    return out


def to_chars(text: str, space: str = SPACE) -> str:
    """'ab cd' -> 'a b <space> c d'; a word like <unk> or [noise] stays one symbol."""
    def chars(w: str) -> str:
        return w if len(w) > 2 and (w[0], w[-1]) in (("<", ">"), ("[", "]")) else " ".join(w)
    return f" {space} ".join(chars(w) for w in text.split())


# ---- stm files, and references matched to a data dir's segments ----

IGNORE_SEGMENT = "ignore_time_segment_in_scoring"


class StmLine(NamedTuple):
    lineno: int
    file: str
    channel: str
    speaker: str
    start: float
    end: float
    label: str  # the optional <...> field ('' when absent)
    words: List[str]


def any_angle_label(word: str) -> bool:
    return word.startswith("<") and word.endswith(">")


def read_stm(path: str, is_label: Callable[[str], bool] = any_angle_label) -> List[StmLine]:
    """Every segment line of an stm file (';;' comments and blank lines skipped). The sixth
    field is the label when is_label says so. A short line or non-numeric times is a
    FormatError naming the file and line."""
    out: List[StmLine] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.startswith(";;"):
                continue
            p = line.split()
            if len(p) < 5:
                raise FormatError(path, lineno, "an stm line needs: file channel speaker start end [<label>] words")
            try:
                start, end = float(p[3]), float(p[4])
            except ValueError:
                raise FormatError(path, lineno, f"start/end {p[3]!r} {p[4]!r} are not numbers") from None
            words = p[5:]
            label = words.pop(0) if words and is_label(words[0]) else ""
            out.append(StmLine(lineno, p[0], p[1], p[2], start, end, label, words))
    return out


def stm_to_text(stm_path: str, segments_path: str, tol: float = 0.015) -> Dict[str, str]:
    """utt -> reference words, taken from the stm line with the same recording,
    start and end (within tol seconds) as the utterance's entry in `segments`.
    stm lines marked ignore_time_segment_in_scoring are not references; an
    utterance with no stm line is an error naming it."""
    by_key: Dict[Tuple[str, int, int], str] = {}
    q = lambda x: int(round(float(x) / tol))  # noqa: E731
    for row in read_stm(stm_path):
        text = " ".join(row.words)
        if text != IGNORE_SEGMENT:
            by_key[(row.file, q(row.start), q(row.end))] = text
    out: Dict[str, str] = {}
    missing: List[str] = []
    for utt, val in read_table(segments_path).items():
        rec, start, end = val.split()[:3]
        k = (rec, q(start), q(end))
        hit = by_key.get(k)
        if hit is None:  # tolerate a rounding step either way
            hit = next((by_key[(rec, k[1] + a, k[2] + b)] for a in (-1, 0, 1) for b in (-1, 0, 1)
                        if (rec, k[1] + a, k[2] + b) in by_key), None)
        if hit is None:
            missing.append(utt)
        else:
            out[utt] = hit
    if missing:
        raise ValueError(f"{len(missing)} utterance(s) of {segments_path} have no matching segment in "
                         f"{stm_path}: {' '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
    return out


# ---- glm (global mapping) filtering ----

def find_csrfilt(sclite: Optional[str] = None) -> Optional[str]:
    """csrfilt.sh beside the sclite in use, in tools/sctk/bin, or in Debian's /usr/lib/sctk/bin."""
    cands = []
    if sclite:
        cands.append(os.path.join(os.path.dirname(os.path.realpath(sclite)), "csrfilt.sh"))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cands += [os.path.join(repo, "tools", "sctk", "bin", "csrfilt.sh"), "/usr/lib/sctk/bin/csrfilt.sh"]
    found = shutil.which("csrfilt.sh")
    cands += [found] if found else []
    return next((c for c in cands if os.path.isfile(c) and os.access(c, os.X_OK)), None)


def read_glm(path: str) -> List[Tuple[List[str], List[str]]]:
    """The context-free word rules `from words => to words / [ ] __ [ ]` of a glm.
    A token to delete must not be in square brackets (`<noise> => / [ ] __ [ ]` works).
    The right side is kept verbatim (an alternation `{ a / b }` stays one, as
    csrfilt.sh leaves it); rules with other contexts are logged as skipped."""
    rules, skipped = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split(";;")[0].strip()
            if not line or line.startswith("*"):
                continue
            m = re.match(r"^(.*?)\s*=>\s*(.*?)\s*/\s*\[\s*\]\s*__\s*\[\s*\]\s*$", line)
            if not m:
                skipped += 1
                continue
            # csrfilt.sh (rfilter1) reads a left-side word `[x]` as `x`: do the same so
            # that both filters agree (a literal bracketed token cannot be matched).
            frm = [w[1:-1] if len(w) > 2 and w[0] == "[" and w[-1] == "]" else w for w in m.group(1).lower().split()]
            rules.append((frm, m.group(2).lower().split()))
    if skipped:
        log.warning("glm %s: %d rule(s) with contexts the Python filter does not handle were skipped", path, skipped)
    return rules


def apply_glm_words(text: str, rules: List[Tuple[List[str], List[str]]], split_hyphens: bool = True) -> str:
    """Applies glm word rules left to right, longest match first (case-insensitive)."""
    words = text.lower().split()
    if split_hyphens:
        words = [p for w in words for p in (w.split("-") if "-" in w.strip("-") else [w]) if p]
    out, i = [], 0
    rules = sorted(rules, key=lambda r: -len(r[0]))
    while i < len(words):
        for frm, to in rules:
            if frm and words[i : i + len(frm)] == frm:
                out += to
                i += len(frm)
                break
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def glm_filter_trn(in_trn: str, out_trn: str, glm: str, side: str, sclite: Optional[str] = None,
                   use_csrfilt: bool = True) -> str:
    """Filters a trn file through the glm (csrfilt.sh -i trn -dh -t side, or the
    Python fallback) into out_trn; returns which filter ran. Case is kept lower."""
    csrfilt = find_csrfilt(sclite) if use_csrfilt else None
    if csrfilt:
        with open(in_trn, "rb") as fin:
            env = dict(os.environ, PATH=os.path.dirname(os.path.realpath(csrfilt)) + os.pathsep + os.environ.get("PATH", ""))
            res = subprocess.run([csrfilt, "-i", "trn", "-dh", "-t", side, glm], stdin=fin,
                                 capture_output=True, check=False, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"{csrfilt} failed on {in_trn}: {res.stderr.decode(errors='replace')[-500:]}")
        text = res.stdout.decode("utf-8")
        lines = [re.sub(r"^(.*?)(\([^()]*\))\s*$", lambda m: m.group(1).lower() + m.group(2), ln)
                 for ln in text.splitlines()]
        with atomic_write(out_trn) as f:
            f.write("".join(" ".join(ln.split()) + "\n" for ln in lines if ln.strip()))
        return "csrfilt.sh"
    rules = read_glm(glm)
    with atomic_write(out_trn) as f:
        for tid, words in read_trn(in_trn).items():
            w = apply_glm_words(words, rules)
            f.write(f"{w} ({tid})\n" if w else f"({tid})\n")
    return "python"
