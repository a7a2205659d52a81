"""Scoring a decode directory with NIST sclite: WER, CER and TER.

For each metric M in (wer, cer, ter) it writes <decode_dir>/score_M/ref.trn,
hyp.trn and result.txt (`sclite -r ref.trn trn -h hyp.trn trn -i rm -o all stdout`).
score_decode_dir reads the references (a data dir's text, or an stm through its
segments) and the hypotheses of bljust.bin.decode; --glm filters both (csrfilt.sh from
SCTK, else a Python rule applier) before WER/CER.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from typeguard import typechecked

from bljust.score.trn import glm_filter_trn, stm_to_text, to_chars, write_trn
from bljust.utils.fileio import atomic_write, read_table

log = logging.getLogger(__name__)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLUMNS = ("Snt", "Wrd", "Corr", "Sub", "Del", "Ins", "Err", "S.Err")


class ScliteNotFound(RuntimeError):
    pass


def find_sclite(explicit: Optional[str] = None) -> str:
    """--sclite if given, else tools/sctk/bin/sclite of this checkout, else sclite on PATH."""
    if explicit:
        if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
            return explicit
        raise ScliteNotFound(f"--sclite {explicit}: no such executable")
    local = os.path.join(REPO, "tools", "sctk", "bin", "sclite")
    if os.path.isfile(local) and os.access(local, os.X_OK):
        return local
    on_path = shutil.which("sclite")
    if on_path:
        return on_path
    raise ScliteNotFound(
        "sclite (NIST SCTK) not found in tools/sctk/bin/ nor on PATH: run tools/setup.sh to install "
        "SCTK into tools/sctk (on Debian/Ubuntu `apt-get install sctk` provides /usr/lib/sctk/bin/sclite), "
        "or pass --sclite /path/to/sclite")


def run_sclite(ref_trn: str, hyp_trn: str, result_txt: str, sclite: Optional[str] = None) -> Dict[str, float]:
    """Runs sclite, writes its report to result_txt atomically and returns the Sum/Avg row."""
    exe = find_sclite(sclite)
    cmd = [exe, "-r", ref_trn, "trn", "-h", hyp_trn, "trn", "-i", "rm", "-o", "all", "stdout"]
    res = subprocess.run(cmd, capture_output=True, check=False)
    out = res.stdout.decode("utf-8", errors="replace")
    if res.returncode != 0 or "Sum/Avg" not in out:
        raise RuntimeError(f"sclite failed (rc={res.returncode}): {' '.join(cmd)}\n"
                           f"{res.stderr.decode(errors='replace')[-800:]}{out[-800:]}")
    with atomic_write(result_txt) as f:
        f.write(out)
    return parse_result(result_txt)


_NUM = r"[-+]?\d+(?:\.\d+)?"


def parse_result(path: str) -> Dict[str, float]:
    """The Sum/Avg row of an sclite report: Snt, Wrd (counts) and Corr, Sub, Del,
    Ins, Err, S.Err (percent); plus the absolute counts (`n_Corr`, ...) from the
    `Sum` row of the count table when the report has one."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    row = _row(text, r"Sum/Avg")
    if row is None:
        raise ValueError(f"{path}: no 'Sum/Avg' row: is this an sclite report (sclite -o all/sum)?")
    out: Dict[str, float] = {k: (int(v) if k in ("Snt", "Wrd") else v) for k, v in zip(COLUMNS, row)}
    counts = _row(text, r"Sum")
    if counts is not None:
        out.update({f"n_{k}": int(v) for k, v in zip(COLUMNS[2:], counts[2:])})
    return out


def _row(text: str, label: str):
    """Eight numbers of the table row whose first cell is exactly `label`."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 4 and re.fullmatch(label, cells[1] if not cells[0] else cells[0]):
            nums = re.findall(_NUM, " ".join(cells[2:]))
            if len(nums) >= 8:
                return [float(x) for x in nums[:8]]
    return None


def score(
    score_root: str,
    ref_text: Mapping[str, str],
    hyp_text: Mapping[str, str],
    metrics: Sequence[str] = ("wer", "cer"),
    utt2spk: Optional[Mapping[str, str]] = None,
    hyp_tokens: Optional[Mapping[str, str]] = None,
    ref_tokenize: Optional[Callable[[str], str]] = None,
    glm: Optional[str] = None,
    sclite: Optional[str] = None,
) -> Dict[str, Dict[str, float]]:
    """Scores hyps against refs for each metric into score_root/score_<metric>/.

    Every reference utterance must have a hypothesis (an empty one counts as all
    deletions, so a lost hypothesis cannot silently improve the score); a
    hypothesis without reference is an error too. For "ter", hyp_tokens (utt ->
    space-separated tokens) and ref_tokenize (words -> space-separated tokens)
    are required. With glm, words are filtered (csrfilt.sh, or a Python rule
    applier) before WER and CER.
    """
    missing = [u for u in ref_text if u not in hyp_text]
    extra = [u for u in hyp_text if u not in ref_text]
    for what, ids in (("have no hypothesis", missing), ("have no reference", extra)):
        if ids:
            raise ValueError(f"{len(ids)} utterance(s) {what}: {' '.join(sorted(ids)[:10])}"
                             f"{' ...' if len(ids) > 10 else ''}")
    results: Dict[str, Dict[str, float]] = {}
    exe = find_sclite(sclite)
    for metric in metrics:
        d = os.path.join(score_root, f"score_{metric}")
        os.makedirs(d, exist_ok=True)
        ref_trn, hyp_trn = os.path.join(d, "ref.trn"), os.path.join(d, "hyp.trn")
        if metric in ("wer", "cer"):
            refs, hyps = dict(ref_text), dict(hyp_text)
            if glm:
                refs, hyps = _glm_words(d, refs, hyps, utt2spk, glm, exe)
            if metric == "cer":
                refs = {u: to_chars(t) for u, t in refs.items()}
                hyps = {u: to_chars(t) for u, t in hyps.items()}
        elif metric == "ter":
            if hyp_tokens is None or ref_tokenize is None:
                raise ValueError("TER needs the hypothesis tokens (the decode dir's 'token' file) and a tokenizer")
            refs = {u: ref_tokenize(t) for u, t in ref_text.items()}
            hyps = {u: hyp_tokens.get(u, "") for u in ref_text}
        else:
            raise ValueError(f"unknown metric '{metric}' (wer, cer, ter)")
        write_trn(ref_trn, refs, utt2spk)
        write_trn(hyp_trn, hyps, utt2spk)
        results[metric] = run_sclite(ref_trn, hyp_trn, os.path.join(d, "result.txt"), exe)
        r = results[metric]
        log.info("%s: %s %.2f%% (Snt %d, Wrd %d, Sub %.1f Del %.1f Ins %.1f) -> %s", score_root, metric.upper(),
                 r["Err"], r["Snt"], r["Wrd"], r["Sub"], r["Del"], r["Ins"], os.path.join(d, "result.txt"))
    return results


def _glm_words(d: str, refs, hyps, utt2spk, glm: str, exe: str):
    """Filters refs and hyps through the glm (via trn files kept in d) and maps back to utt ids."""
    from bljust.score.trn import read_trn, trn_id

    out = []
    for side, texts in (("ref", refs), ("hyp", hyps)):
        raw, filt = os.path.join(d, f"{side}.raw.trn"), os.path.join(d, f"{side}.glm.trn")
        write_trn(raw, texts, utt2spk)
        how = glm_filter_trn(raw, filt, glm, side, exe)
        back = {trn_id(u, utt2spk.get(u) if utt2spk else None).lower(): u for u in texts}
        got = read_trn(filt)
        out.append({back[k.lower()]: v for k, v in got.items()})
        log.info("applied %s to the %s side with %s", glm, side, how)
    return out[0], out[1]


def _tokenize_fn(token_dir: str):
    from bljust.text.tokenizer import Tokenizer

    tok = Tokenizer.from_dir(token_dir)
    # The raw pieces: a piece missing from tokens.txt stays itself (an error the
    # model could not avoid) rather than matching a hypothesised <unk>.
    if hasattr(tok, "tokens"):
        return lambda text: " ".join(tok.tokens(text))
    return lambda text: " ".join(tok.ids_to_tokens(tok.encode(text)))


@typechecked
def score_decode_dir(data_dir: str, decode_dir: str, metrics: List[str], token_dir: Optional[str] = None,
                     stm: Optional[str] = None, glm: Optional[str] = None,
                     sclite: Optional[str] = None) -> Dict[str, Dict[str, float]]:
    """Scores <decode_dir>/text (and token) against <data_dir>/text, or with `stm` against the
    stm lines matching <data_dir>/segments; returns {metric: sclite's Sum/Avg row}."""
    hyp_path = os.path.join(decode_dir, "text")
    if not os.path.isfile(hyp_path):
        raise FileNotFoundError(f"{hyp_path}: no hypotheses (run bljust.bin.decode first)")
    if stm:
        ref = stm_to_text(stm, os.path.join(data_dir, "segments"))
    else:
        ref = read_table(os.path.join(data_dir, "text"), allow_empty_value=True)
    hyp = read_table(hyp_path, allow_empty_value=True)
    u2s_path = os.path.join(data_dir, "utt2spk")
    utt2spk = read_table(u2s_path) if os.path.isfile(u2s_path) else None
    hyp_tokens = ref_tokenize = None
    if "ter" in metrics:
        if not token_dir:
            raise ValueError("--metrics ter needs --token_dir (the token list and bpe.model)")
        hyp_tokens = read_table(os.path.join(decode_dir, "token"), allow_empty_value=True)
        ref_tokenize = _tokenize_fn(token_dir)
    return score(decode_dir, ref, hyp, metrics, utt2spk, hyp_tokens, ref_tokenize, glm, sclite)
