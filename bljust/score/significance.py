"""Significance of a WER difference between two systems, with NIST SCTK's sc_stats.

Both systems' hypotheses (trn files, one line per utterance, scored against the same
reference) are aligned by sclite (`-o sgml`) and compared by sc_stats with

- the matched-pair sentence-segment word error test (MAPSSWE, Gillick & Cox 1989): the
  error counts of the two systems are compared segment by segment, where a segment is a
  stretch of the reference both systems get right at its boundaries; the statistic is
  normally distributed under the null hypothesis, so p = erfc(|Z| / sqrt 2) (two-sided);
- the sign test over speakers: how many speakers have a higher WER under system A than
  under B, against a fair coin. The counts N(+) and N(-) are sc_stats'; the p-value is
  computed here, exact and two-sided, with the speakers of equal WER left out (the
  usual sign test). sc_stats' own p is not used: its table of binomial probabilities is
  wrong for larger speaker counts (with 40 speakers, 19 against 21 gets p 0.001 there,
  where the exact two-sided p is 0.87), and it counts half of the ties on each side.

sc_stats writes its reports to files; it can abort while freeing memory after writing
them (Debian's SCTK 2.4.10 with -v), so a report that is complete is read whatever its
exit status, and a missing or truncated one is an error naming the command.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Optional

from bljust.score.sclite import find_sclite


@dataclass
class Significance:
    wer_a: float          # % word error of system A over the segments sc_stats aligned
    wer_b: float
    mapsswe_z: float      # Z statistic of the matched-pair test (negative: A has fewer errors)
    mapsswe_p: float      # two-sided p-value of the matched-pair test
    sign_p: float         # two-sided p-value of the sign test over speakers
    n_speakers: int
    n_segments: int

    def significant(self, alpha: float = 0.05) -> bool:
        """Both tests reject equality at level alpha."""
        return self.mapsswe_p < alpha and self.sign_p < alpha


def find_sc_stats(sclite: Optional[str] = None) -> str:
    """sc_stats beside the sclite in use (tools/sctk/bin links both), else on PATH."""
    exe = os.path.join(os.path.dirname(os.path.realpath(find_sclite(sclite))), "sc_stats")
    if os.access(exe, os.X_OK):
        return exe
    for cand in (os.path.join(os.path.dirname(find_sclite(sclite)), "sc_stats"), shutil.which("sc_stats")):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise FileNotFoundError("sc_stats (NIST SCTK) not found beside sclite nor on PATH: run tools/setup.sh")


def _sgml(ref_trn: str, hyp_trn: str, name: str, out_dir: str, sclite: str) -> str:
    """sclite's SGML alignment of one system, written under out_dir; returns its path."""
    hyp = os.path.join(out_dir, f"{name}.trn")
    shutil.copyfile(hyp_trn, hyp)
    cmd = [sclite, "-r", ref_trn, "trn", "-h", hyp, "trn", name, "-i", "rm", "-o", "sgml"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    path = hyp + ".sgml"
    if res.returncode != 0 or not os.path.isfile(path):
        raise RuntimeError(f"sclite failed (rc={res.returncode}): {' '.join(cmd)}\n{res.stdout[-800:]}{res.stderr[-800:]}")
    return path


def _read(path: str, what: str, cmd: str) -> str:
    if not os.path.isfile(path):
        raise RuntimeError(f"sc_stats wrote no {what} report ({path}): {cmd}")
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def parse_mapsswe(text: str) -> tuple:
    """(Z, p, %err A, %err B, segments) from sc_stats' MAPSSWE report."""
    m = re.search(r"MTCH_PR_RESULTS \(systems: \S+ \S+\) \(# segs: (\d+)\).*?\(% Error:\s*([\d.]+)\s+([\d.]+)\)"
                  r".*?\(Z Stat:\s*([-\d.]+|nan|-?inf)\)", text)
    if not m:
        raise ValueError("no MTCH_PR_RESULTS line in the matched-pair report")
    segs, ea, eb, z = int(m.group(1)), float(m.group(2)), float(m.group(3)), float(m.group(4))
    p = 1.0 if math.isnan(z) else math.erfc(abs(z) / math.sqrt(2.0))
    return z, p, ea, eb, segs


def sign_test_p(n_plus: int, n_minus: int) -> float:
    """Exact two-sided p of the sign test: P(a fair coin gives a split at least as uneven as
    n_plus against n_minus); 1 without any non-tied pair."""
    n, k = n_plus + n_minus, min(n_plus, n_minus)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2.0 * tail)


def parse_sign(text: str) -> tuple:
    """(p, speakers) from sc_stats' verbose sign-test report: its counts of speakers with a
    positive, a negative and no difference, and the exact p of sign_test_p (ties left out)."""
    counts = {}
    for sign in ("+", "-", "0"):
        m = re.search(rf"Differences = N\({re.escape(sign)}\) =\s*(\d+)", text)
        if not m:
            raise ValueError(f"no N({sign}) count in the sign-test report")
        counts[sign] = int(m.group(1))
    return sign_test_p(counts["+"], counts["-"]), counts["+"] + counts["-"] + counts["0"]


def compare(ref_trn: str, hyp_a: str, hyp_b: str, name_a: str = "A", name_b: str = "B",
            sclite: Optional[str] = None, work_dir: Optional[str] = None) -> Significance:
    """MAPSSWE and sign test of system A's hypotheses against system B's on the same reference.

    trn files as sclite reads them (`words (spk-utt)`); the utterance ids must match.
    work_dir keeps sclite's and sc_stats' reports (default: a temporary folder).
    """
    for path in (ref_trn, hyp_a, hyp_b):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found")
    for name in (name_a, name_b):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name_a == name_b:
            raise ValueError(f"system names must differ and be [A-Za-z0-9_.-]+, got {name_a!r}, {name_b!r}")
    exe = find_sclite(sclite)
    stats = find_sc_stats(sclite)
    tmp = None if work_dir else tempfile.TemporaryDirectory(prefix="sc_stats.")
    out = work_dir or tmp.name
    os.makedirs(out, exist_ok=True)
    try:
        sg = [_sgml(ref_trn, h, n, out, exe) for h, n in ((hyp_a, name_a), (hyp_b, name_b))]
        alignments = "".join(open(p, encoding="utf-8", errors="replace").read() for p in sg)
        reports = {}
        for test in ("mapsswe", "sign"):
            cmd = [stats, "-p", "-t", test, "-v", "-n", f"compare_{test}", "-O", out]
            subprocess.run(cmd, input=alignments, capture_output=True, text=True)
            reports[test] = _read(os.path.join(out, f"compare_{test}.stats.{test}"), test, " ".join(cmd))
        z, p, ea, eb, segs = parse_mapsswe(reports["mapsswe"])
        sp, nspk = parse_sign(reports["sign"])
        return Significance(ea, eb, z, p, sp, nspk, segs)
    finally:
        if tmp is not None:
            tmp.cleanup()
