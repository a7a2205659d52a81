"""Operations that make new data directories from old ones: split, subset, combine,
copy with renamed ids, and speed perturbation (Kaldi utils/ semantics)."""
from __future__ import annotations

import bisect
import logging
import os
import shutil
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Set

from bljust.data.datadir import FEATURE_INFO_FILES, RECO_FILES, SPK_FILES, UTT_FILES, DataDir, c_sorted

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- split


def _balanced_bounds(counts: Sequence[int], n: int) -> List[int]:
    """End indices of n contiguous, non-empty groups whose sums are as even as possible."""
    prefix = [0]
    for c in counts:
        prefix.append(prefix[-1] + c)
    total, bounds, prev = prefix[-1], [], 0
    for k in range(1, n):
        target = total * k / n
        i = bisect.bisect_left(prefix, target)
        if i > 0 and abs(prefix[i - 1] - target) <= abs(prefix[min(i, len(prefix) - 1)] - target):
            i -= 1
        i = max(prev + 1, min(i, len(counts) - (n - k)))  # every group keeps at least one item
        bounds.append(i)
        prev = i
    return bounds + [len(counts)]


def split_data_dir(dd: DataDir, n: int, per_utt: bool = False) -> List[DataDir]:
    """n parts, balanced by utterance count; speakers are never split across parts
    unless per_utt. Each part is a complete data directory."""
    if n < 1:
        raise ValueError(f"number of parts must be >= 1, got {n}")
    if per_utt:
        groups = [[u] for u in dd.utts]
        unit = "utterances"
    else:
        groups = list(dd.spk2utt.values())
        unit = "speakers"
    if n > len(groups):
        raise ValueError(f"{dd.path}: cannot split {len(groups)} {unit} into {n} parts"
                         + ("" if per_utt else " (use --per-utt to split speakers)"))
    assign: Dict[str, int] = {}
    start = 0
    for i, end in enumerate(_balanced_bounds([len(g) for g in groups], n)):
        assign.update((u, i) for g in groups[start:end] for u in g)
        start = end
    return _partition(dd, assign, n)


def _partition(dd: DataDir, assign: Dict[str, int], n: int) -> List[DataDir]:
    """Distributes every table in one pass (subset() per part would be O(parts x size));
    a recording or speaker goes to every part that uses it."""
    reco_parts: Dict[str, Set[int]] = {}
    for u, r in dd.utt2reco().items():
        reco_parts.setdefault(r, set()).add(assign[u])
    spk_parts: Dict[str, Set[int]] = {}
    for u, s in dd.utt2spk.items():
        spk_parts.setdefault(s, set()).add(assign[u])
    parts: List[Dict[str, Dict[str, str]]] = [{name: {} for name in dd.tables} for _ in range(n)]
    for name, t in dd.tables.items():
        if name in UTT_FILES:
            for k, v in t.items():
                if k in assign:
                    parts[assign[k]][name][k] = v
            continue
        where = reco_parts if name in RECO_FILES else spk_parts if name in SPK_FILES else None
        for k, v in t.items():
            for i in (range(n) if where is None else where.get(k, ())):
                parts[i][name][k] = v
    return [DataDir(p, dd.path) for p in parts]


def split_dir_name(src: str, n: int, per_utt: bool = False) -> str:
    return os.path.join(src, f"split{n}{'utt' if per_utt else ''}")


def split_to_disk(src: str, n: int, per_utt: bool = False) -> str:
    """Writes <src>/split<n>[utt]/{1..n}; skips the work when every part is newer than src."""
    out = split_dir_name(src, n, per_utt)
    if not os.path.isdir(src):
        raise FileNotFoundError(f"{src}: no such data directory")
    newest = max((os.path.getmtime(os.path.join(src, f)) for f in os.listdir(src)
                  if os.path.isfile(os.path.join(src, f))), default=0.0)
    done = [os.path.join(out, str(i), "spk2utt") for i in range(1, n + 1)]
    if all(os.path.isfile(p) and os.path.getmtime(p) >= newest for p in done):
        log.info("%s is up to date", out)
        return out
    for i, part in enumerate(split_data_dir(DataDir.read(src), n, per_utt), 1):
        part.write(os.path.join(out, str(i)))
        for name in FEATURE_INFO_FILES:
            if os.path.isfile(os.path.join(src, name)):
                shutil.copyfile(os.path.join(src, name), os.path.join(out, str(i), name))
    log.info("split %s into %d parts in %s", src, n, out)
    return out


# --------------------------------------------------------------------------- subset


def utt_durations(dd: DataDir) -> Dict[str, float]:
    """Length of each utterance in seconds (or frames*0.01) from the cheapest source available."""
    if dd.has("utt2dur"):
        return {u: float(v) for u, v in dd.tables["utt2dur"].items()}
    if dd.has("utt2num_frames"):
        return {u: int(v) * 0.01 for u, v in dd.tables["utt2num_frames"].items()}
    segs = dd.segments()
    if segs and all(e != -1 for _, _, e in segs.values()):
        return {u: e - s for u, (_, s, e) in segs.items()}
    if dd.has("feats.scp"):
        import kaldiio  # only here: reading matrices is the slow fallback
        return {u: kaldiio.load_mat(v).shape[0] * 0.01 for u, v in dd.tables["feats.scp"].items()}
    if dd.has("wav.scp") and not segs:
        import soundfile
        out = {}
        for u, v in dd.tables["wav.scp"].items():
            if v.rstrip().endswith("|"):
                raise ValueError(f"{dd.path}: no utt2dur/utt2num_frames, and wav.scp entry of '{u}' is a pipe")
            out[u] = soundfile.info(v).duration
        return out
    raise ValueError(f"{dd.path}: no utt2dur, utt2num_frames, segments or feats.scp to measure lengths with")


def _audio_seconds(entry: str) -> float:
    """Duration of a wav.scp entry: the header for a file, the decoded audio for a pipe."""
    if entry.rstrip().endswith("|"):
        import kaldiio
        rate, data = kaldiio.load_mat(entry)
        return len(data) / rate
    import soundfile
    return soundfile.info(entry).duration


def compute_utt2dur(dd: DataDir) -> Dict[str, str]:
    """Kaldi get_utt2dur.sh: segment lengths, else the audio's (an end of -1 reads the recording)."""
    wav = dd.tables.get("wav.scp", {})
    reco_dur: Dict[str, float] = {}

    def reco_seconds(r: str) -> float:
        if r not in reco_dur:
            if r not in wav:
                raise ValueError(f"{dd.path}: recording '{r}' is not in wav.scp")
            reco_dur[r] = _audio_seconds(wav[r])
        return reco_dur[r]

    if dd.has("segments"):
        return {u: _fmt_time((reco_seconds(r) if e == -1 else e) - s) for u, (r, s, e) in dd.segments().items()}
    return {u: _fmt_time(reco_seconds(u)) for u in dd.utts}


def _read_id_list(path: str) -> List[str]:
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip()]


def subset_data_dir(dd: DataDir, num: Optional[int] = None, mode: str = "even",
                    utt_list: Optional[str] = None, spk_list: Optional[str] = None) -> DataDir:
    """Kaldi subset_data_dir.sh: `num` utterances picked by mode (even|first|last|shortest),
    or those in an utterance / speaker list file (first field of each line)."""
    utts = dd.utts
    if utt_list or spk_list:
        wanted = set(_read_id_list(utt_list or spk_list))  # type: ignore[arg-type]
        have = set(utts) if utt_list else set(dd.utt2spk.values())
        if wanted - have:
            log.warning("%d ids of %s are not in %s", len(wanted - have), utt_list or spk_list, dd.path)
        keep = wanted & have if utt_list else {u for u in utts if dd.utt2spk[u] in wanted}
        return dd.subset(keep)
    if num is None or num < 0:
        raise ValueError("subset needs a number of utterances or a list")
    if num >= len(utts):
        log.warning("%s has %d utterances, asked for %d: taking all", dd.path, len(utts), num)
        return dd.subset(utts)
    if mode == "first":
        keep = utts[:num]
    elif mode == "last":
        keep = utts[len(utts) - num:]
    elif mode == "shortest":
        dur = utt_durations(dd)
        keep = sorted(utts, key=lambda u: (dur.get(u, float("inf")), u.encode()))[:num]
    elif mode == "even":  # spread over the whole (speaker-sorted) list, like Kaldi's subset_scp.pl
        keep = [utts[i * len(utts) // num] for i in range(num)]
    else:
        raise ValueError(f"unknown subset mode '{mode}'")
    return dd.subset(keep)


# --------------------------------------------------------------------------- combine


def combine_data_dirs(dds: Sequence[DataDir], names: Optional[Sequence[str]] = None) -> DataDir:
    """One directory holding every source's utterances; a duplicate utterance id is an error
    naming both sources, a recording or speaker listed twice must have the same value."""
    names = list(names or [d.path for d in dds])
    owner: Dict[str, str] = {}
    dup = []
    for d, name in zip(dds, names):
        for u in d.utt2spk:
            if u in owner:
                dup.append(f"utterance '{u}' is in both {owner[u]} and {name}")
            owner.setdefault(u, name)
    if dup:
        raise ValueError("; ".join(dup[:10]) + (f"; ... {len(dup) - 10} more" if len(dup) > 10 else ""))

    all_names = {t for d in dds for t in d.tables}
    any_segments = any(d.has("segments") for d in dds)
    tables: Dict[str, Dict[str, str]] = {}
    for t in c_sorted(all_names):
        missing = [n for d, n in zip(dds, names) if not d.has(t)]
        if missing and t not in ("segments", "utt2uniq"):
            log.warning("dropping %s: missing in %s", t, ", ".join(missing))
            continue
        merged: Dict[str, str] = {}
        for d, name in zip(dds, names):
            src = d.tables.get(t)
            if src is None and t == "segments":  # whole-recording utterances, as Kaldi does
                dur = d.tables.get("utt2dur", {})
                src = {u: f"{u} 0 {dur.get(u, '-1')}" for u in d.utt2spk}
            elif src is None:  # utt2uniq: an unperturbed source is its own original
                src = {u: u for u in d.utt2spk}
            for k, v in src.items():
                if k in merged and merged[k] != v:
                    raise ValueError(f"{t}: '{k}' has different values in {names} ('{merged[k]}' vs '{v}')")
                merged[k] = v
        tables[t] = merged
    if any_segments and "wav.scp" not in tables:
        log.warning("combined directory has segments but no wav.scp")
    return DataDir(tables)


# --------------------------------------------------------------------------- renaming


def rename_ids(dd: DataDir, utt: Callable[[str], str], spk: Callable[[str], str],
               reco: Callable[[str], str]) -> DataDir:
    """Applies id maps everywhere ids appear (keys, utt2spk values, segments' recordings).
    Without segments the recording id is the utterance id, so `utt` renames recordings."""
    if not dd.has("segments"):
        reco = utt
    tables: Dict[str, Dict[str, str]] = {}
    for name, t in dd.tables.items():
        f = utt if name in UTT_FILES else reco if name in RECO_FILES else spk if name in SPK_FILES else None
        if f is None:
            tables[name] = dict(t)
            continue
        new = {f(k): v for k, v in t.items()}
        if len(new) != len(t):
            raise ValueError(f"{name}: renaming made two ids equal")
        tables[name] = new
    tables["utt2spk"] = {utt(u): spk(s) for u, s in dd.utt2spk.items()}
    if dd.has("segments"):
        tables["segments"] = {utt(u): " ".join([reco(v.split()[0])] + v.split()[1:])
                              for u, v in dd.tables["segments"].items()}
    return DataDir(tables)


def _with_utt2uniq(dd: DataDir, out: DataDir, utt: Callable[[str], str]) -> DataDir:
    """utt2uniq maps each new id to the original utterance, so that copies of one
    recording can be kept on the same side of a train/held-out split."""
    uniq = dd.tables.get("utt2uniq", {})
    out.tables["utt2uniq"] = {utt(u): uniq.get(u, u) for u in dd.utt2spk}
    return out


def copy_data_dir(dd: DataDir, utt_prefix: str = "", utt_suffix: str = "",
                  spk_prefix: str = "", spk_suffix: str = "") -> DataDir:
    """Kaldi copy_data_dir.sh; utterance affixes also go on recording ids.
    (--keep-feats, which keeps the features a destination already has, is done by the caller.)"""
    uf = lambda x: f"{utt_prefix}{x}{utt_suffix}"  # noqa: E731
    sf = lambda x: f"{spk_prefix}{x}{spk_suffix}"  # noqa: E731
    out = rename_ids(dd, uf, sf, uf)
    return _with_utt2uniq(dd, out, uf) if (utt_prefix or utt_suffix) else out


# --------------------------------------------------------------------------- speed perturbation

_NOT_WAV = (".flac", ".sph", ".mp3", ".ogg", ".opus", ".aiff")


def _fmt_time(t: float) -> str:
    return "-1" if t == -1 else f"{t:.3f}".rstrip("0").rstrip(".")


def speed_wav_entry(entry: str, factor: str) -> str:
    """A wav.scp value that plays `entry` at `factor` times the speed, through sox."""
    entry = entry.strip()
    if entry.endswith("|"):
        return f"{entry} sox -t wav - -t wav - speed {factor} |"
    in_type = "" if entry.lower().endswith(_NOT_WAV) else "-t wav "
    return f"sox {in_type}{entry} -t wav - speed {factor} |"


def perturb_speed(dd: DataDir, factor: str, prefix: bool = True) -> DataDir:
    """Kaldi perturb_data_dir_speed.sh: ids get `sp<factor>-`, audio goes through sox,
    times and durations shrink by the factor; features must be recomputed."""
    f = float(factor)
    if f <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    p = f"sp{factor}-" if prefix else ""
    add = lambda x: p + x  # noqa: E731
    out = _with_utt2uniq(dd, rename_ids(dd, add, add, add), add)
    for name in ("feats.scp", "utt2num_frames", "utt2num_samples"):
        if out.tables.pop(name, None) is not None:
            log.info("dropping %s: features and lengths must be recomputed for speed %s", name, factor)
    if f == 1.0:
        return out
    if out.has("wav.scp"):
        out.tables["wav.scp"] = {r: speed_wav_entry(v, factor) for r, v in out.tables["wav.scp"].items()}
    if out.has("segments"):
        segs = {}
        for u, v in out.tables["segments"].items():
            r, s, e = v.split()
            segs[u] = f"{r} {_fmt_time(float(s) / f)} {_fmt_time(-1 if float(e) == -1 else float(e) / f)}"
        out.tables["segments"] = segs
    for name in ("utt2dur", "reco2dur"):
        if out.has(name):
            out.tables[name] = {k: _fmt_time(float(v) / f) for k, v in out.tables[name].items()}
    return out


def perturb_speed_multi(dd: DataDir, factors: Iterable[str], always_include_prefix: bool = False) -> DataDir:
    """Several speeds combined in one directory (Kaldi's *_3way.sh is factors 0.9 1.0 1.1).
    The 1.0 copy keeps the original ids unless always_include_prefix."""
    parts, names = [], []
    for factor in factors:
        keep_ids = float(factor) == 1.0 and not always_include_prefix
        parts.append(perturb_speed(dd, factor, prefix=not keep_ids))
        names.append(f"speed {factor}")
    return combine_data_dirs(parts, names)

