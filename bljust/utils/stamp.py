"""What a stage computed its outputs from: a done-marker that knows its inputs.

A stamp records the content hash of each input table (wav.scp, segments, text, ...),
the size and modification time of the audio files wav.scp names (cheap to stat, and
a restored or re-recorded file changes them) and the stage's options. A stage is done
when its marker exists and its stamp equals the stamp of the inputs as they are now;
otherwise it runs again, and the log says which input changed.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
from typing import Dict, Iterable, List, Optional

from bljust.utils.fileio import atomic_write, file_digest


def file_sha1(path: str) -> str:
    return file_digest(path, "sha1")


def _audio_paths(spec: str) -> List[str]:
    """Files one wav.scp value reads: the path itself, or the existing files a `cmd |` pipe names."""
    spec = spec.strip()
    if not spec.endswith("|"):
        return [spec]
    try:
        words = shlex.split(spec[:-1])
    except ValueError:
        words = spec[:-1].split()
    return [w for w in words if "/" in w or "." in w]


def audio_stat_sha1(wav_scp: str) -> str:
    """One hash over (path, size, mtime) of every audio file wav.scp names; a missing file counts as such."""
    h = hashlib.sha1()
    with open(wav_scp, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.split(maxsplit=1)
            if len(parts) < 2:
                continue
            for path in _audio_paths(parts[1]):
                try:
                    st = os.stat(path)
                    h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "replace"))
                except OSError:
                    h.update(f"{path}\0missing\n".encode("utf-8", "replace"))
    return h.hexdigest()


def make_stamp(files: Iterable[str], opts: Optional[Dict[str, str]] = None, audio_of: Optional[str] = None) -> Dict:
    """{"files": {path: sha1 or "absent"}, "audio": sha1 of the audio files' stats, "opts": {...}}."""
    stamp: Dict = {"files": {}, "opts": dict(sorted((opts or {}).items()))}
    for path in files:
        stamp["files"][path] = file_sha1(path) if os.path.isfile(path) else "absent"
    if audio_of and os.path.isfile(audio_of):
        stamp["audio"] = audio_stat_sha1(audio_of)
    return stamp


def stamp_changes(marker: str, stamp: Dict) -> List[str]:
    """What differs between the marker's recorded stamp and `stamp` (empty: up to date)."""
    if not os.path.isfile(marker):
        return ["not done yet"]
    try:
        with open(marker, encoding="utf-8") as f:
            old = json.load(f)
    except (ValueError, OSError):
        return [f"{marker} is not a stamp (written by an older version?)"]
    if not isinstance(old, dict):
        return [f"{marker} is not a stamp (written by an older version?)"]
    changes = []
    old_files = old.get("files", {})
    for path, digest in stamp["files"].items():
        if old_files.get(path) != digest:
            changes.append(f"{path} {'appeared' if old_files.get(path) == 'absent' else 'changed'}"
                           if digest != "absent" else f"{path} is gone")
    if old.get("audio") != stamp.get("audio"):
        changes.append("audio files changed (size or modification time)")
    old_opts = old.get("opts", {})
    for k in sorted(set(old_opts) | set(stamp["opts"])):
        if old_opts.get(k) != stamp["opts"].get(k):
            changes.append(f"option {k}: {old_opts.get(k)} -> {stamp['opts'].get(k)}")
    return changes


def write_stamp(marker: str, stamp: Dict) -> None:
    with atomic_write(marker) as f:
        json.dump(stamp, f, indent=1)
        f.write("\n")
