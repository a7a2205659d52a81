"""Plain-text Kaldi tables and crash-safe writing, shared by every stage.

Every reader reports bad input with the file and line number; every writer goes
through atomic_write so a stage killed half-way never leaves a half-written file
that a later stage would trust.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from typing import IO, Iterator, Tuple


_UMASK = os.umask(0)
os.umask(_UMASK)


class FormatError(ValueError):
    """Bad input, with the file and line it came from."""

    def __init__(self, path: str, lineno: int, msg: str) -> None:
        super().__init__(f"{path}:{lineno}: {msg}" if lineno else f"{path}: {msg}")
        self.path = path
        self.lineno = lineno


def iter_table(path: str, allow_empty_value: bool = False) -> Iterator[Tuple[str, str, int]]:
    """Yields (key, value, lineno) for each line `key value...` of a Kaldi text table.

    Raises FormatError naming the file and line for non-UTF-8 bytes or a line with
    no value (unless allow_empty_value).
    """
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise FormatError(path, lineno, f"not valid UTF-8 ({e.reason} at byte {e.start})") from None
            if not line.strip():
                raise FormatError(path, lineno, "empty line")
            parts = line.split(maxsplit=1)
            key = parts[0]
            value = parts[1].strip() if len(parts) > 1 else ""
            if not value and not allow_empty_value:
                raise FormatError(path, lineno, f"'{key}' has no value")
            yield key, value, lineno


def read_table(path: str, allow_empty_value: bool = False, unique: bool = True) -> dict:
    """Reads a Kaldi text table into an ordered dict; duplicate keys are an error."""
    out: dict = {}
    for key, value, lineno in iter_table(path, allow_empty_value):
        if unique and key in out:
            raise FormatError(path, lineno, f"duplicate key '{key}'")
        out[key] = value
    return out


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Writes to a temporary file beside `path` and renames it over `path` on success."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are shared like any other file
    try:
        if "b" in mode:
            f: IO = os.fdopen(fd, mode)
        else:
            f = io.open(fd, mode, encoding=encoding, newline="\n")
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_table(path: str, items, sort: bool = True) -> None:
    """Writes `key value` lines atomically, sorted as LC_ALL=C sort would (byte order)."""
    rows = list(items.items()) if isinstance(items, dict) else list(items)
    if sort:
        rows.sort(key=lambda kv: kv[0].encode("utf-8"))
    with atomic_write(path) as f:
        for k, v in rows:
            f.write(f"{k} {v}\n" if v != "" else f"{k}\n")


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of a file's content, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
