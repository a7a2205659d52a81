"""TED-LIUM release 2 (openslr 19) from its download layout to Kaldi data dirs.

Layout: <root>/TEDLIUM_release2/{train,dev,test}/{sph/<talk>.sph, stm/<talk>.stm}.
Each stm line is `talk channel speaker start end <label> word...`. The cleaning
follows Kaldi's tedlium recipe so that numbers stay comparable with published ones:
- segments whose transcript is `ignore_time_segment_in_scoring` are not utterances
  (they stay in the scoring stm, where sclite needs them);
- `<sil>` is removed; pronunciation variants lose their marker (`word(2)` -> `word`);
  a trailing `(<utterance name>)` token on train lines is removed;
- dev's `<F0_M>`/`<F0_F>` labels become `<o,f0,male>`/`<o,f0,female>` like train/test;
- split contractions are joined (`it 's` -> `it's`), as the corpus dictionary
  spells them; with TEDLIUM.152k.dic present only joins the dictionary knows;
- every non-speech token in braces ({NOISE}, {BREATH}, {COUGH}, {SMACK}, {UH},
  {UM}) becomes one token, NOISE_TOKEN, in text and stm alike; the recipe's glm
  (copied next to the stm) deletes it before scoring: trained on, never scored;
- segments whose transcript is then empty are dropped (counted in the log).
Utterance ids are <talk>-<start>-<end> with times in centiseconds, %07d, as Kaldi
writes them (rounded rather than truncated, so 17.37 s is 0001737, not 0001736);
speaker = recording = talk.

wav.scp holds plain .sph paths: soundfile (libsndfile) reads NIST SPHERE PCM.
libsndfile cannot decode shorten-compressed SPHERE; such files get a
`sph2pipe -f wav -p <path> |` pipe (kaldiio runs it) when sph2pipe is on PATH,
and a clear error otherwise.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from typing import Dict, List, Optional, Set, Tuple

import soundfile
from typeguard import typechecked

from bljust.data.corpora.common import Utterance, c_sorted, write_data_dir
from bljust.score.trn import IGNORE_SEGMENT as IGNORE
from bljust.score.trn import read_stm as stm_lines
from bljust.utils.fileio import FormatError, atomic_write, write_table

logger = logging.getLogger(__name__)

NOISE_TOKEN = "<noise>"
STM_HEADER = (
    ';;\n;; LABEL "o" "Overall" "Overall results"\n'
    ';; LABEL "f0" "f0" "Wideband channel"\n;; LABEL "f2" "f2" "Telephone channel"\n'
    ';; LABEL "male" "Male" "Male Talkers"\n;; LABEL "female" "Female" "Female Talkers"\n;;\n'
)
_VARIANT = re.compile(r"\(\d+\)$")
_UTT_NAME = re.compile(r"\((?!\d+\))[^ ()]*\)$")
_LABELS = {"<F0_M>": "<o,f0,male>", "<F0_F>": "<o,f0,female>"}
StmRow = Tuple[str, float, float, str, List[str]]  # talk, start, end, label ('' if none), words


@typechecked
def clean_words(words: List[str], dictionary: Optional[Set[str]] = None) -> List[str]:
    """Kaldi-style word cleaning of one stm transcript (see the module doc)."""
    out: List[str] = []
    for w in words:
        if w == "<sil>":
            continue
        if w.startswith("{") and w.endswith("}"):
            out.append(NOISE_TOKEN)
            continue
        w = _VARIANT.sub("", w)
        if not w:
            continue
        if w.startswith("'") and out and out[-1] != NOISE_TOKEN and (
                dictionary is None or out[-1] + w in dictionary):
            out[-1] += w
            continue
        out.append(w)
    return out


def centis(t: float) -> int:
    return int(round(t * 100))


def utt_id(talk: str, start: float, end: float) -> str:
    return f"{talk}-{centis(start):07d}-{centis(end):07d}"


def _is_label(word: str) -> bool:
    """TED-LIUM's stm labels: <o,f0,male>-style lists and the <F0_M>/<F0_F> aliases (other
    <...> words, such as <sil>, are words)."""
    return word.startswith("<") and word.endswith(">") and ("," in word or word in _LABELS)


@typechecked
def read_stm(path: str, dictionary: Optional[Set[str]] = None) -> List[StmRow]:
    """(talk, start, end, label, cleaned words) per line of one stm; the ignore
    marker comes back as the single word IGNORE. FormatError names file:line."""
    rows = []
    for line in stm_lines(path, is_label=_is_label):
        if not 0 <= line.start < line.end:
            raise FormatError(path, line.lineno, f"segment times {line.start}..{line.end} are not increasing")
        rest = line.words
        if rest:  # train lines end with the utterance's name in parentheses
            last = _UTT_NAME.sub("", rest[-1])
            rest = rest[:-1] + ([last] if last else [])
        words = [IGNORE] if rest == [IGNORE] else clean_words(rest, dictionary)
        rows.append((line.file, line.start, line.end, _LABELS.get(line.label, line.label), words))
    return rows


def _sph_entry(path: str) -> str:
    with open(path, "rb") as f:
        head = f.read(1024)
    if not head.startswith(b"NIST_1A"):
        raise FormatError(path, 0, "not a NIST SPHERE file")
    if b"shorten" not in head.split(b"end_head")[0]:
        return path
    if shutil.which("sph2pipe"):
        return f"sph2pipe -f wav -p {path} |"
    raise FormatError(path, 0, "shorten-compressed SPHERE, which libsndfile cannot read: "
                               "install sph2pipe (openslr 3) and put it on PATH")


def _duration(path: str) -> float:
    return soundfile.info(path).duration  # reads the header only


@typechecked
def scan_set(set_dir: str, dictionary: Optional[Set[str]] = None
             ) -> Tuple[List[Utterance], Dict[str, str], List[StmRow]]:
    """Utterances, wav.scp entries and cleaned stm lines of one TED-LIUM set."""
    stm_dir, sph_dir = os.path.join(set_dir, "stm"), os.path.join(set_dir, "sph")
    if not os.path.isdir(stm_dir):
        raise FileNotFoundError(f"{stm_dir}: no such directory")
    utts: List[Utterance] = []
    wav: Dict[str, str] = {}
    stm: List[StmRow] = []
    n_ignored = n_empty = n_outside = n_overrun = 0
    for name in c_sorted(n for n in os.listdir(stm_dir) if n.endswith(".stm")):
        talk = name[:-4]
        path = os.path.join(stm_dir, name)
        sph = os.path.abspath(os.path.join(sph_dir, talk + ".sph"))
        if not os.path.isfile(sph):
            raise FileNotFoundError(f"{path}: no audio {sph}")
        wav[talk] = _sph_entry(sph)
        duration = _duration(sph) if not wav[talk].endswith("|") else None
        for row in read_stm(path, dictionary):
            if row[0] != talk:
                raise FormatError(path, 0, f"line for talk '{row[0]}' in the stm of '{talk}'")
            stm.append(row)
            _, start, end, _, words = row
            if words == [IGNORE]:
                n_ignored += 1
            elif not words:
                n_empty += 1
            elif duration is not None and start >= duration:
                n_outside += 1
            else:
                if duration is not None and end > duration + 0.01:
                    n_overrun += 1
                utts.append(Utterance(utt_id(talk, start, end), talk, talk, " ".join(words), start, end))
    if not utts:
        raise FormatError(stm_dir, 0, "no utterances found")
    utts.sort(key=lambda u: (u.reco.encode(), u.start))
    stm.sort(key=lambda r: (r[0].encode(), r[1]))
    logger.info("%s: %d segments, %d utterances; skipped %d %s and %d left empty by cleaning",
                set_dir, len(stm), len(utts), n_ignored, IGNORE, n_empty)
    if n_outside:
        logger.warning("%s: skipped %d segments that start after the end of their audio", set_dir, n_outside)
    if n_overrun:
        logger.warning("%s: %d segments end after their audio; readers get the audio up to its end",
                       set_dir, n_overrun)
    return utts, wav, stm


def write_stm(path: str, rows: List[StmRow], talks: Optional[Set[str]] = None) -> None:
    """Writes the cleaned stm (channel 'A', as Kaldi's scoring expects) atomically."""
    with atomic_write(path) as f:
        f.write(STM_HEADER)
        for talk, start, end, label, words in rows:
            if talks is None or talk in talks:
                f.write(" ".join([talk, "A", talk, f"{start:.2f}", f"{end:.2f}"] + ([label] if label else []) + words) + "\n")


@typechecked
def choose_labeled_talks(utts: List[Utterance], labeled_talks: Optional[int] = None,
                         labeled_hours: Optional[float] = None) -> List[str]:
    """A deterministic labeled subset of talks: talks in the order of the md5 of
    their id (a fixed shuffle that does not depend on file order or Python's
    hash seed), taken until `labeled_talks` talks or `labeled_hours` of speech."""
    dur: Dict[str, float] = {}
    for u in utts:
        dur[u.reco] = dur.get(u.reco, 0.0) + (u.end - u.start)
    order = sorted(dur, key=lambda t: (hashlib.md5(t.encode()).hexdigest(), t))
    if labeled_talks is None and labeled_hours is None:
        return order
    if labeled_talks is not None and labeled_hours is not None:
        raise ValueError("give labeled_talks or labeled_hours, not both")
    if labeled_talks is not None:
        if not 0 < labeled_talks <= len(order):
            raise ValueError(f"labeled_talks={labeled_talks} but train has {len(order)} talks")
        return order[:labeled_talks]
    if labeled_hours <= 0:
        raise ValueError(f"labeled_hours={labeled_hours} must be > 0")
    chosen, total = [], 0.0
    for t in order:
        if total >= labeled_hours * 3600:
            break
        chosen.append(t)
        total += dur[t]
    if total < labeled_hours * 3600:
        logger.warning("asked for %.1f h labeled but train has only %.1f h: all of it is labeled",
                       labeled_hours, total / 3600)
    return chosen


@typechecked
def prepare(corpus_dir: str, out_dir: str, labeled_talks: Optional[int] = None,
            labeled_hours: Optional[float] = None, train_name: str = "train",
            unlab_name: str = "train_unlab", eval_sets: Tuple[str, ...] = ("dev", "test"),
            glm: Optional[str] = None) -> List[str]:
    """Writes dev, test, the labeled part of train (`train_name`) and the rest
    (`unlab_name`, text kept aside as text.unused); the labeled dirs also get the
    cleaned stm and a copy of the `glm` file. Returns the dirs written."""
    root = corpus_dir
    if os.path.isdir(os.path.join(corpus_dir, "TEDLIUM_release2")):
        root = os.path.join(corpus_dir, "TEDLIUM_release2")
    dic_path = os.path.join(root, "TEDLIUM.152k.dic")
    dictionary = None
    if os.path.isfile(dic_path):
        with open(dic_path, encoding="utf-8") as f:
            dictionary = {_VARIANT.sub("", line.split()[0]) for line in f if line.strip()}
    written = []
    for s in eval_sets:
        utts, wav, stm = scan_set(os.path.join(root, s), dictionary)
        d = os.path.join(out_dir, s)
        write_data_dir(d, utts, wav, labeled=True)
        _write_scoring(d, stm, None, glm)
        written.append(d)
    utts, wav, stm = scan_set(os.path.join(root, "train"), dictionary)
    lab = set(choose_labeled_talks(utts, labeled_talks, labeled_hours))
    lab_utts = [u for u in utts if u.reco in lab]
    unlab_utts = [u for u in utts if u.reco not in lab]
    d = os.path.join(out_dir, train_name)
    write_data_dir(d, lab_utts, wav, labeled=True)
    _write_scoring(d, stm, lab, glm)
    written.append(d)
    hours = sum(u.end - u.start for u in lab_utts) / 3600
    logger.info("labeled: %d talks, %.2f h; unlabeled: %d talks, %.2f h", len(lab), hours,
                len({u.reco for u in unlab_utts}), sum(u.end - u.start for u in unlab_utts) / 3600)
    d = os.path.join(out_dir, unlab_name)
    if unlab_utts:
        write_data_dir(d, unlab_utts, wav, labeled=False)
        written.append(d)
    elif os.path.isdir(d):
        logger.warning("%s exists from an earlier run but all of train is now labeled", d)
    return written


def _write_scoring(d: str, stm: List[StmRow], talks: Optional[Set[str]], glm: Optional[str]) -> None:
    write_stm(os.path.join(d, "stm"), stm, talks)
    if glm is not None:
        with open(glm, encoding="utf-8") as src, atomic_write(os.path.join(d, "glm")) as f:
            f.write(src.read())
    rows = sorted({(r[0], f"{r[0]} A") for r in stm if talks is None or r[0] in talks})
    write_table(os.path.join(d, "reco2file_and_channel"), rows)
