"""LibriSpeech (openslr 12) from its download layout to Kaldi data dirs.

Layout: <root>/LibriSpeech/<set>/<reader>/<chapter>/<reader>-<chapter>-<utt>.flac
with one <reader>-<chapter>.trans.txt per chapter, and LibriSpeech/SPEAKERS.TXT.
As in Kaldi's recipe the speaker is <reader>-<chapter> (a chapter is one
recording session), wav.scp holds plain .flac paths (soundfile and kaldiio read
FLAC, so no `flac -d |` pipe and no flac binary is needed), and the data dir
name is the set name with underscores (train-clean-100 -> train_clean_100).
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Tuple

from typeguard import typechecked

from bljust.data.corpora.common import Utterance, write_data_dir
from bljust.utils.fileio import FormatError

logger = logging.getLogger(__name__)


def dir_name(set_name: str) -> str:
    return set_name.replace("-", "_")


@typechecked
def read_speakers(path: str) -> Dict[str, str]:
    """Reader id -> 'm'/'f' from SPEAKERS.TXT (`ID | SEX | SUBSET | MINUTES | NAME`;
    `;` starts a comment; names may themselves contain '|', so only the first two
    fields are used)."""
    out: Dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip() or line.lstrip().startswith(";"):
                continue
            fields = [x.strip() for x in line.split("|")]
            if len(fields) < 3 or not fields[0].isdigit() or fields[1].upper() not in ("M", "F"):
                raise FormatError(path, lineno, f"expected 'ID | SEX | SUBSET | ...', got {line.strip()!r}")
            out[fields[0]] = fields[1].lower()
    return out


@typechecked
def scan_set(set_dir: str) -> Tuple[List[Utterance], Dict[str, str]]:
    """Utterances and wav.scp entries of one LibriSpeech set directory.

    Every transcript line must have its .flac and every .flac a transcript line;
    anything else is a FormatError naming the transcript (a half-extracted set
    must not become a silently smaller data dir).
    """
    if not os.path.isdir(set_dir):
        raise FileNotFoundError(f"{set_dir}: no such LibriSpeech set directory")
    utts: List[Utterance] = []
    wav: Dict[str, str] = {}
    for reader in sorted(os.listdir(set_dir)):
        rdir = os.path.join(set_dir, reader)
        if not os.path.isdir(rdir):
            continue
        for chapter in sorted(os.listdir(rdir)):
            cdir = os.path.join(rdir, chapter)
            if not os.path.isdir(cdir):
                continue
            spk = f"{reader}-{chapter}"
            trans = os.path.join(cdir, f"{spk}.trans.txt")
            if not os.path.isfile(trans):
                raise FileNotFoundError(f"{cdir}: no transcript {spk}.trans.txt")
            flacs = {n[:-5] for n in os.listdir(cdir) if n.endswith(".flac")}
            seen = set()
            with open(trans, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    parts = line.strip().split(maxsplit=1)
                    if not parts:
                        continue
                    utt = parts[0]
                    if not utt.startswith(spk + "-"):
                        raise FormatError(trans, lineno, f"utterance '{utt}' is not of chapter {spk}")
                    if utt not in flacs:
                        raise FormatError(trans, lineno, f"no audio {utt}.flac")
                    if utt in seen:
                        raise FormatError(trans, lineno, f"duplicate utterance '{utt}'")
                    seen.add(utt)
                    text = " ".join(parts[1].split()) if len(parts) > 1 else ""
                    if not text:
                        raise FormatError(trans, lineno, f"utterance '{utt}' has no transcript")
                    utts.append(Utterance(utt=utt, reco=utt, spk=spk, text=text))
                    wav[utt] = os.path.abspath(os.path.join(cdir, utt + ".flac"))
            orphans = sorted(flacs - seen)
            if orphans:
                raise FormatError(trans, 0, f"{len(orphans)} .flac files without transcript, e.g. {orphans[0]}")
    if not utts:
        raise FormatError(set_dir, 0, "no utterances found")
    return utts, wav


@typechecked
def prepare(corpus_dir: str, out_dir: str, labeled_sets: List[str], unlabeled_sets: List[str],
            eval_sets: List[str], unlab_name: str = "train_unlab") -> List[str]:
    """Writes one data dir per labeled and eval set, and one `unlab_name` dir for
    all unlabeled sets together (transcripts kept aside as text.unused).

    corpus_dir holds LibriSpeech/ (or is it). Returns the data dirs written.
    """
    root = corpus_dir
    if os.path.isdir(os.path.join(corpus_dir, "LibriSpeech")):
        root = os.path.join(corpus_dir, "LibriSpeech")
    clash = set(labeled_sets + eval_sets) & set(unlabeled_sets)
    if clash:
        raise ValueError(f"sets both labeled and unlabeled: {sorted(clash)}")
    spk_file = os.path.join(root, "SPEAKERS.TXT")
    readers = read_speakers(spk_file) if os.path.isfile(spk_file) else {}
    if not readers:
        logger.warning("%s not found: no spk2gender", spk_file)

    def genders(utts: List[Utterance]) -> Dict[str, str]:
        return {u.spk: readers[u.spk.split("-")[0]] for u in utts if u.spk.split("-")[0] in readers}

    written = []
    for s in labeled_sets + eval_sets:
        utts, wav = scan_set(os.path.join(root, s))
        d = os.path.join(out_dir, dir_name(s))
        write_data_dir(d, utts, wav, labeled=True, spk2gender=genders(utts))
        written.append(d)
    if unlabeled_sets:
        all_utts: List[Utterance] = []
        all_wav: Dict[str, str] = {}
        for s in unlabeled_sets:
            utts, wav = scan_set(os.path.join(root, s))
            all_utts += utts
            all_wav.update(wav)
        d = os.path.join(out_dir, unlab_name)
        write_data_dir(d, all_utts, all_wav, labeled=False, spk2gender=genders(all_utts))
        written.append(d)
    return written
