"""Kaldi data directories: an in-memory form, atomic C-sorted writing, validation, fixing.

A data directory is a set of plain-text tables keyed by utterance, recording or
speaker id. `DataDir` keeps each table as {key: raw value} so that values we do not
interpret (wav.scp pipes, feats.scp ark offsets) survive a round trip untouched.
spk2utt is never stored: it is derived from utt2spk when written.
"""
from __future__ import annotations

import logging
import os
import shutil
from typing import Dict, Iterable, List, Optional, Set, Tuple

from bljust.utils.fileio import FormatError, iter_table, read_table, write_table

log = logging.getLogger(__name__)

# Which id each table is keyed by decides how subsetting and renaming treat it.
UTT_FILES = ("text", "utt2spk", "segments", "feats.scp", "utt2dur", "utt2num_frames", "text.phn", "utt2uniq",
             "utt2num_samples")
RECO_FILES = ("wav.scp", "reco2file_and_channel", "reco2dur")
SPK_FILES = ("spk2gender",)
TEXT_FILES = ("text", "text.phn")  # an empty transcript is readable; validate() reports it
KNOWN_FILES = UTT_FILES + RECO_FILES + SPK_FILES + ("spk2utt",)
# Not tables: what a feature dir says about its features; subsets and splits carry them along.
FEATURE_INFO_FILES = ("feat_dim", "feats_type", "feats_conf.yaml")


def c_sorted(keys: Iterable[str]) -> List[str]:
    """Sorted as `LC_ALL=C sort` sorts: by UTF-8 bytes."""
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def parse_segment(value: str) -> Tuple[str, float, float]:
    """`reco start end` -> (reco, start, end); raises ValueError with the reason."""
    f = value.split()
    if len(f) != 3:
        raise ValueError(f"expected 'utt reco start end', got {len(f) + 1} fields")
    try:
        start, end = float(f[1]), float(f[2])
    except ValueError:
        raise ValueError(f"start/end times are not numbers: '{f[1]} {f[2]}'") from None
    if start < 0:
        raise ValueError(f"start time {f[1]} < 0")
    if end != -1 and end <= start:  # -1 means "to the end of the recording" (Kaldi)
        raise ValueError(f"end time {f[2]} <= start time {f[1]}")
    return f[0], start, end


def _clean_rows(path: str, allow_empty: bool = False) -> Optional[Tuple[List[str], List[str]]]:
    """(keys, values) of a well-formed, C-sorted table with unique keys, read in one go;
    None when anything is off, so the caller re-reads line by line for an exact message."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text and not text.endswith("\n"):
        return None
    rows = [line.split(None, 1) for line in text.split("\n")[:-1]]
    if any(len(r) != 2 for r in rows):
        if not allow_empty or any(not r for r in rows):
            return None
        rows = [r if len(r) == 2 else [r[0], ""] for r in rows]
    keys = [r[0] for r in rows]
    kb = [k.encode("utf-8") for k in keys]
    if any(a >= b for a, b in zip(kb, kb[1:])):  # unsorted or duplicated
        return None
    return keys, [r[1].strip() for r in rows]


class DataDir:
    """The tables of one Kaldi data directory, {file name: {key: value}}."""

    def __init__(self, tables: Optional[Dict[str, Dict[str, str]]] = None, path: str = "") -> None:
        self.tables: Dict[str, Dict[str, str]] = {k: dict(v) for k, v in (tables or {}).items() if k != "spk2utt"}
        self.path = path
        if "utt2spk" not in self.tables:
            self.tables["utt2spk"] = {}

    @classmethod
    def read(cls, path: str, tolerant: bool = False) -> "DataDir":
        """Reads every known table in `path`.

        Strict mode raises FormatError (file:line) on a duplicate key; tolerant mode
        (used by fix) keeps the first line of a duplicated key and logs the count.
        """
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{path}: no such data directory")
        if not os.path.isfile(os.path.join(path, "utt2spk")):
            raise FormatError(os.path.join(path, "utt2spk"), 0, "missing: every data directory needs utt2spk")
        tables: Dict[str, Dict[str, str]] = {}
        for name in KNOWN_FILES:
            p = os.path.join(path, name)
            if name == "spk2utt" or not os.path.isfile(p):
                continue
            allow_empty = name in TEXT_FILES
            fast = _clean_rows(p, allow_empty)
            if fast is not None:
                tables[name] = dict(zip(*fast))
                continue
            if not tolerant:
                tables[name] = read_table(p, allow_empty_value=allow_empty)
                continue
            t: Dict[str, str] = {}
            dups = 0
            for key, value, _ in iter_table(p, allow_empty_value=allow_empty):
                if key in t:
                    dups += 1
                else:
                    t[key] = value
            if dups:
                log.warning("%s: dropped %d duplicate lines (kept the first of each key)", p, dups)
            tables[name] = t
        return cls(tables, path)

    def has(self, name: str) -> bool:
        return name in self.tables

    @property
    def utt2spk(self) -> Dict[str, str]:
        return self.tables["utt2spk"]

    @property
    def utts(self) -> List[str]:
        return c_sorted(self.utt2spk)

    @property
    def spk2utt(self) -> Dict[str, List[str]]:
        out: Dict[str, List[str]] = {}
        for utt in self.utts:
            out.setdefault(self.utt2spk[utt], []).append(utt)
        return {s: out[s] for s in c_sorted(out)}

    def segments(self) -> Dict[str, Tuple[str, float, float]]:
        """Parsed segments ({} when the directory has none)."""
        out = {}
        for utt, value in self.tables.get("segments", {}).items():
            try:
                out[utt] = parse_segment(value)
            except ValueError as e:
                raise FormatError(os.path.join(self.path, "segments"), 0, f"utterance '{utt}': {e}") from None
        return out

    def utt2reco(self) -> Dict[str, str]:
        """Recording of each utterance: from segments, or the utterance itself."""
        if self.has("segments"):
            return {u: v.split(maxsplit=1)[0] for u, v in self.tables["segments"].items()}
        return {u: u for u in self.utt2spk}

    def subset(self, utts: Iterable[str]) -> "DataDir":
        """The utterances `utts` (those in utt2spk), with only the recordings and speakers they use."""
        keep = set(utts) & set(self.utt2spk)
        recos = {r for u, r in self.utt2reco().items() if u in keep}
        spks = {self.utt2spk[u] for u in keep}
        tables: Dict[str, Dict[str, str]] = {}
        for name, t in self.tables.items():
            ids = keep if name in UTT_FILES else recos if name in RECO_FILES else spks if name in SPK_FILES else None
            tables[name] = dict(t) if ids is None else {k: v for k, v in t.items() if k in ids}
        return DataDir(tables, self.path)

    def write(self, path: str) -> None:
        """Writes every table atomically, C-sorted, plus spk2utt derived from utt2spk.

        Known tables this DataDir lacks are removed from `path`, so a stale
        feats.scp from an earlier run cannot disagree with the new utterance list.
        """
        os.makedirs(path, exist_ok=True)
        for name, t in self.tables.items():
            write_table(os.path.join(path, name), t)
        write_table(os.path.join(path, "spk2utt"), {s: " ".join(u) for s, u in self.spk2utt.items()})
        for name in KNOWN_FILES:
            p = os.path.join(path, name)
            if name != "spk2utt" and name not in self.tables and os.path.isfile(p):
                os.unlink(p)


# --------------------------------------------------------------------------- validation


class _Checker:
    """Collects every problem of one directory instead of stopping at the first."""

    MAX_PER_CHECK = 5

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: List[str] = []
        self.warnings: List[str] = []

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def scan(self, name: str, allow_empty: bool = False) -> Dict[str, Tuple[str, int]]:
        """{key: (value, lineno)}, recording unsorted keys, duplicates and format errors."""
        p = self.file(name)
        fast = _clean_rows(p, allow_empty)
        if fast is not None:
            keys, values = fast
            return dict(zip(keys, zip(values, range(1, len(keys) + 1))))
        out: Dict[str, Tuple[str, int]] = {}
        with open(p, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):
            self.errors.append(f"{p}: last line has no newline")
        prev: Optional[bytes] = None
        prev_key = ""
        unsorted = False
        try:
            for key, value, lineno in iter_table(p, allow_empty_value=allow_empty):
                if key in out:
                    self.errors.append(f"{p}:{lineno}: duplicate key '{key}' (first on line {out[key][1]})")
                    continue
                kb = key.encode("utf-8")
                if prev is not None and kb < prev and not unsorted:
                    unsorted = True
                    self.errors.append(
                        f"{p}:{lineno}: not sorted in LC_ALL=C order ('{key}' after '{prev_key}'); "
                        "utils/fix_data_dir.sh sorts it")
                prev, prev_key = kb, key
                out[key] = (value, lineno)
        except FormatError as e:
            self.errors.append(str(e))
        return out

    def add_capped(self, msgs: List[str], what: str) -> None:
        """Keeps one kind of problem from hiding the others in a report of the first ~20."""
        self.errors += msgs[: self.MAX_PER_CHECK]
        if len(msgs) > self.MAX_PER_CHECK:
            self.errors.append(f"... {len(msgs) - self.MAX_PER_CHECK} more {what}")

    def same_keys(self, ref_name: str, ref: Dict[str, Tuple[str, int]], name: str,
                  other: Dict[str, Tuple[str, int]], what: str = "utterance") -> None:
        """Each key of one table must be in the other; messages name where the key was seen."""
        for a_name, a, b_name, b in ((ref_name, ref, name, other), (name, other, ref_name, ref)):
            missing = sorted(a.keys() - b.keys(), key=lambda k: a[k][1])
            for k in missing[: self.MAX_PER_CHECK]:
                self.errors.append(f"{self.file(a_name)}:{a[k][1]}: {what} '{k}' is not in {self.file(b_name)}")
            if len(missing) > self.MAX_PER_CHECK:
                self.errors.append(
                    f"{self.file(a_name)}: ... {len(missing) - self.MAX_PER_CHECK} more {what} ids not in {b_name}")


def validate_data_dir(path: str, no_text: bool = False, no_feats: bool = False,
                      no_wav: bool = False) -> Tuple[List[str], List[str]]:
    """Kaldi validate_data_dir.sh checks; returns (errors, warnings), both complete."""
    c = _Checker(path)
    if not os.path.isdir(path):
        return [f"{path}: no such directory"], []
    for name in ("utt2spk", "spk2utt"):
        if not os.path.isfile(c.file(name)):
            c.errors.append(f"{c.file(name)}: missing")
    if c.errors:
        return c.errors, c.warnings
    exists = lambda name: os.path.isfile(c.file(name))  # noqa: E731

    utt2spk = c.scan("utt2spk")
    if not utt2spk:
        c.errors.append(f"{c.file('utt2spk')}: no utterances")
    c.add_capped([f"{c.file('utt2spk')}:{ln}: utterance '{utt}' must map to one speaker id, got '{spk}'"
                  for utt, (spk, ln) in utt2spk.items() if len(spk.split()) != 1], "bad utt2spk lines")
    _check_spk2utt(c, utt2spk, c.scan("spk2utt"))
    unprefixed = [u for u, (s, _) in utt2spk.items() if not u.startswith(s)]
    if unprefixed:
        c.warnings.append(
            f"{c.file('utt2spk')}: {len(unprefixed)} utterance ids do not start with their speaker id "
            f"(e.g. '{unprefixed[0]}'); Kaldi recommends it so that sorting by utterance sorts by speaker")

    if not no_text:
        if not exists("text"):
            c.errors.append(f"{c.file('text')}: missing (use --no-text for an unlabeled directory)")
        for name in TEXT_FILES:
            if exists(name):
                table = c.scan(name, allow_empty=True)
                c.add_capped([f"{c.file(name)}:{ln}: empty transcript for utterance '{utt}'"
                              for utt, (value, ln) in table.items() if not value], f"empty transcripts in {name}")
                c.same_keys("utt2spk", utt2spk, name, table)

    if not no_wav:
        _check_recordings(c, utt2spk)

    if not no_feats and exists("feats.scp"):
        c.same_keys("utt2spk", utt2spk, "feats.scp", c.scan("feats.scp"))
    for name, kind in (("utt2dur", float), ("utt2num_frames", int)):
        if exists(name):
            table = c.scan(name)
            c.add_capped([f"{c.file(name)}:{ln}: '{value}' for '{utt}' is not a positive {kind.__name__}"
                          for utt, (value, ln) in table.items() if not _positive(value, kind)], f"bad {name} values")
            c.same_keys("utt2spk", utt2spk, name, table)
    if exists("utt2uniq"):
        c.same_keys("utt2spk", utt2spk, "utt2uniq", c.scan("utt2uniq"))
    if exists("spk2gender"):
        spks = {s: (u, ln) for u, (s, ln) in utt2spk.items()}
        table = c.scan("spk2gender")
        c.add_capped([f"{c.file('spk2gender')}:{ln}: gender of '{spk}' must be m or f, got '{g}'"
                      for spk, (g, ln) in table.items() if g not in ("m", "f")], "bad genders")
        c.same_keys("utt2spk", spks, "spk2gender", table, what="speaker")
    return c.errors, c.warnings


def _positive(value: str, kind: type) -> bool:
    try:
        return kind(value) > 0
    except ValueError:
        return False


def _check_spk2utt(c: _Checker, utt2spk: Dict[str, Tuple[str, int]], spk2utt: Dict[str, Tuple[str, int]]) -> None:
    seen: Set[str] = set()
    problems: List[str] = []
    path = c.file("spk2utt")
    for spk, (value, ln) in spk2utt.items():
        for utt in value.split():
            if utt in seen:
                problems.append(f"{path}:{ln}: utterance '{utt}' listed twice")
            elif utt not in utt2spk:
                problems.append(f"{path}:{ln}: speaker '{spk}' lists utterance '{utt}', which is not in utt2spk")
            elif utt2spk[utt][0] != spk:
                problems.append(f"{path}:{ln}: speaker '{spk}' lists utterance '{utt}', "
                                f"but utt2spk line {utt2spk[utt][1]} gives speaker '{utt2spk[utt][0]}'")
            seen.add(utt)
    for utt, (spk, ln) in utt2spk.items():
        if utt not in seen:
            problems.append(f"{c.file('utt2spk')}:{ln}: utterance '{utt}' (speaker '{spk}') is not in spk2utt")
    c.errors += problems[: c.MAX_PER_CHECK * 2]
    if len(problems) > c.MAX_PER_CHECK * 2:
        c.errors.append(f"{c.file('spk2utt')}: ... {len(problems) - c.MAX_PER_CHECK * 2} more "
                        "utt2spk/spk2utt disagreements; utils/fix_data_dir.sh regenerates spk2utt")


def _check_recordings(c: _Checker, utt2spk: Dict[str, Tuple[str, int]]) -> None:
    if not os.path.isfile(c.file("wav.scp")):
        c.errors.append(f"{c.file('wav.scp')}: missing (use --no-wav for a features-only directory)")
        return
    wav = c.scan("wav.scp")
    if os.path.isfile(c.file("segments")):
        segs = c.scan("segments")
        recos: Dict[str, Tuple[str, int]] = {}
        bad = []
        for utt, (value, ln) in segs.items():
            try:
                reco, _, _ = parse_segment(value)
            except ValueError as e:
                bad.append(f"{c.file('segments')}:{ln}: utterance '{utt}': {e}")
                continue
            recos.setdefault(reco, ("", ln))
        c.add_capped(bad, "bad segments lines")
        c.same_keys("utt2spk", utt2spk, "segments", segs)
        c.same_keys("segments", recos, "wav.scp", wav, what="recording")
    else:
        recos = wav
        c.same_keys("utt2spk", utt2spk, "wav.scp", wav)
    for name in ("reco2file_and_channel", "reco2dur"):
        if os.path.isfile(c.file(name)):
            c.same_keys("wav.scp", wav, name, c.scan(name), what="recording")


# --------------------------------------------------------------------------- fixing


def fix_data_dir(path: str) -> Dict[str, int]:
    """Keeps the utterances every table agrees on, re-sorts, regenerates spk2utt.

    The old tables go to <path>/.backup/ first (as Kaldi's fix_data_dir.sh does).
    Returns {reason: count} of what was dropped; every count is also logged.
    """
    dd = DataDir.read(path, tolerant=True)
    backup = os.path.join(path, ".backup")
    os.makedirs(backup, exist_ok=True)
    for name in KNOWN_FILES:
        if os.path.isfile(os.path.join(path, name)):
            shutil.copy2(os.path.join(path, name), os.path.join(backup, name))

    dropped: Dict[str, int] = {}
    keep = set(dd.utt2spk)

    def drop(reason: str, bad: Set[str]) -> None:
        nonlocal keep
        bad = bad & keep
        if bad:
            dropped[reason] = len(bad)
            keep -= bad

    drop("utt2spk value is not one speaker id", {u for u, s in dd.utt2spk.items() if len(s.split()) != 1})
    for name in UTT_FILES:
        if name != "utt2spk" and dd.has(name):
            drop(f"not in {name}", keep - set(dd.tables[name]))
            extra = set(dd.tables[name]) - set(dd.utt2spk)
            if extra:
                dropped[f"lines of {name} not in utt2spk"] = len(extra)
    for name in TEXT_FILES:
        if dd.has(name):
            drop(f"empty transcript in {name}", {u for u, t in dd.tables[name].items() if not t.strip()})
    if dd.has("segments"):
        bad = set()
        for u, v in dd.tables["segments"].items():
            try:
                parse_segment(v)
            except ValueError:
                bad.add(u)
        drop("bad segments line", bad)
    if dd.has("wav.scp"):
        reco = dd.utt2reco()
        drop("recording not in wav.scp", {u for u in keep if reco.get(u) not in dd.tables["wav.scp"]})

    fixed = dd.subset(keep)
    for name in RECO_FILES + SPK_FILES:
        if dd.has(name) and len(fixed.tables[name]) < len(dd.tables[name]):
            dropped[f"unused entries of {name}"] = len(dd.tables[name]) - len(fixed.tables[name])
    fixed.write(path)
    for reason, n in sorted(dropped.items()):
        log.warning("%s: dropped %d: %s", path, n, reason)
    log.info("%s: kept %d of %d utterances (old files in %s)", path, len(keep), len(dd.utt2spk), backup)
    return dropped
