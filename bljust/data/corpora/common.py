"""Writing the Kaldi data directory that every corpus preparation ends in.

A data dir here is wav.scp, text (or text.unused for unlabeled audio), utt2spk,
spk2utt and optionally segments; every file is C-sorted with unique keys and
written atomically, so a preparation killed half-way is simply run again.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

from typeguard import typechecked

from bljust.utils.fileio import write_table

logger = logging.getLogger(__name__)


@dataclass
class Utterance:
    """One utterance: its recording, speaker, transcript and (for segmented corpora) times."""

    utt: str
    reco: str
    spk: str
    text: str
    start: Optional[float] = None
    end: Optional[float] = None


def c_sorted(keys: Iterable[str]) -> List[str]:
    """Sorts as LC_ALL=C sort does (byte order of the UTF-8 encoding)."""
    return sorted(keys, key=lambda k: k.encode("utf-8"))


@typechecked
def write_data_dir(
    out_dir: str,
    utts: List[Utterance],
    wav_scp: Dict[str, str],
    labeled: bool = True,
    spk2gender: Optional[Dict[str, str]] = None,
) -> None:
    """Writes a Kaldi data dir for `utts`; with labeled=False the transcripts go to
    text.unused so no training stage can take the unlabeled set for labeled data.

    Raises ValueError on duplicate utterance ids or an utterance whose recording
    has no wav.scp entry (both mean a broken corpus, not something to skip).
    """
    seen: Dict[str, Utterance] = {}
    for u in utts:
        if u.utt in seen:
            raise ValueError(f"duplicate utterance id '{u.utt}' (recordings {seen[u.utt].reco}, {u.reco})")
        if u.reco not in wav_scp:
            raise ValueError(f"utterance '{u.utt}': recording '{u.reco}' has no audio")
        if not wav_scp[u.reco].endswith("|") and len(wav_scp[u.reco].split()) != 1:
            raise ValueError(f"recording '{u.reco}': audio path {wav_scp[u.reco]!r} contains "
                             "whitespace, which a wav.scp line cannot hold: move the corpus")
        seen[u.utt] = u
    os.makedirs(out_dir, exist_ok=True)
    used_recos = {u.reco for u in utts}
    write_table(os.path.join(out_dir, "wav.scp"), {r: p for r, p in wav_scp.items() if r in used_recos})
    segmented = any(u.start is not None for u in utts)
    seg_path = os.path.join(out_dir, "segments")
    if segmented:
        write_table(seg_path, [(u.utt, f"{u.reco} {u.start:.2f} {u.end:.2f}") for u in utts])
    elif os.path.exists(seg_path):
        os.unlink(seg_path)  # a stale segments file would redefine the utterances
    text_name, stale = ("text", "text.unused") if labeled else ("text.unused", "text")
    write_table(os.path.join(out_dir, text_name), [(u.utt, u.text) for u in utts])
    if os.path.exists(os.path.join(out_dir, stale)):
        os.unlink(os.path.join(out_dir, stale))
    write_table(os.path.join(out_dir, "utt2spk"), [(u.utt, u.spk) for u in utts])
    spk2utt: Dict[str, List[str]] = {}
    for u in utts:
        spk2utt.setdefault(u.spk, []).append(u.utt)
    write_table(os.path.join(out_dir, "spk2utt"), {s: " ".join(c_sorted(us)) for s, us in spk2utt.items()})
    g_path = os.path.join(out_dir, "spk2gender")
    missing = [s for s in spk2utt if s not in (spk2gender or {})]
    if spk2gender and missing:
        logger.warning("%s: %d of %d speakers have no gender (e.g. %s); spk2gender not written",
                       out_dir, len(missing), len(spk2utt), missing[0])
    if spk2gender and not missing:
        write_table(g_path, {s: spk2gender[s] for s in spk2utt})
    elif os.path.exists(g_path):
        os.unlink(g_path)
    logger.info("%s: %d utterances, %d speakers, %d recordings%s", out_dir, len(utts),
                len(spk2utt), len(used_recos), "" if labeled else " (unlabeled: text.unused)")
