"""Loading and saving torch files without ever running code stored in them.

Every checkpoint, model and statistics file bljust reads goes through `load`:
`torch.load(..., weights_only=True)`, which only rebuilds tensors and plain
containers (dict, list, tuple, str, numbers, None). A file that needs more (a pickled
class, a function call hidden in `__reduce__`) is refused with UnsafeFileError; a
truncated, empty or random file is CorruptFileError. Both name the file in one line.
What bljust saves is checked to be loadable that way (`check_plain`) before it is written.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from typing import Any, Sequence

import torch


class CheckpointError(ValueError):
    """A torch file that cannot be used, with its name in the message."""


class UnsafeFileError(CheckpointError):
    """The file pickles Python objects beyond tensors and plain containers."""


class CorruptFileError(CheckpointError):
    """The file is empty, truncated or not a torch file at all."""


class SaveError(RuntimeError):
    """Writing a file failed (disk full, no permission); the previous version is intact."""

    def __init__(self, msg: str, errno_: int | None = None) -> None:
        super().__init__(msg)
        self.errno = errno_


_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)|GLOBAL ([\w.]+) was not an allowed global")


def _reason(e: BaseException) -> str:
    """The informative line of torch's (long, multi-paragraph) error message."""
    text = str(e)
    if "WeightsUnpickler error:" in text:
        rest = text.split("WeightsUnpickler error:", 1)[1].strip()
        return (rest.splitlines() or ["?"])[0].split(". Please use")[0]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[0].split(". This is an internal")[0] if lines else type(e).__name__)[:200]


def load(path: str, safe_globals: Sequence[Any] = (), what: str = "file") -> Any:
    """torch.load(path, weights_only=True) on CPU; errors are one line naming `path`.

    `safe_globals`: classes the caller vouches for (e.g. argparse.Namespace in a
    fairseq checkpoint), allowed in addition to tensors and plain containers.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} {path} not found")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a {what}")
    if os.path.getsize(path) == 0:
        raise CorruptFileError(f"{path}: empty {what} (0 bytes): was its writer killed? Delete it or train again")
    ctx = torch.serialization.safe_globals(list(safe_globals)) if safe_globals else contextlib.nullcontext()
    try:
        with ctx, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # refused below if unsafe
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        why = _reason(e)
        m = _GLOBAL.search(str(e))
        well_formed, names = _inspect_pickle(path)
        if m or well_formed:
            found = (m.group(1) or m.group(2)) if m else (", ".join(names[:4]) or why)
            raise UnsafeFileError(
                f"{path}: refused: loading this {what} would run code or build Python objects "
                f"({found}); bljust loads only tensors and plain containers") from None
        raise CorruptFileError(f"{path}: not a readable {what} (corrupt or not a torch file: {why})") from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, IndexError, AttributeError, TypeError,
            UnicodeDecodeError, MemoryError) as e:
        if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM):
            raise CheckpointError(f"{path}: cannot read this {what}: {e.strerror}") from None
        raise CorruptFileError(f"{path}: not a readable {what} (truncated or corrupt: {_reason(e)})") from None


def _inspect_pickle(path: str) -> tuple:
    """(whether the file's pickle stream is complete and well formed, the globals it names).

    A well-formed pickle that weights_only refuses asks for more than tensors and plain
    containers (whatever pickle protocol it uses): unsafe, not damaged.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                if not pkl:
                    return False, []
                data = z.read(pkl[0])
        else:
            with open(path, "rb") as f:
                data = f.read(64 << 20)
        names, strings = [], []
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name in ("GLOBAL", "INST"):
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
        return True, [n for n in dict.fromkeys(names) if not n.startswith(("torch.", "collections.OrderedDict"))]
    except Exception:  # noqa: BLE001 - anything unparsable is simply not a well-formed pickle
        return False, []


def check_plain(obj: Any, where: str = "", safe_globals: Sequence[type] = ()) -> None:
    """Raises TypeError when `obj` holds anything a weights_only load would refuse.
    `safe_globals`: classes the reader allows too (see `load`); their attributes are checked."""
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, torch.Tensor, torch.dtype,
                                       torch.device, torch.Size)):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            check_plain(k, f"{where}[key {k!r}]", safe_globals)
            check_plain(v, f"{where}.{k}" if isinstance(k, str) else f"{where}[{k!r}]", safe_globals)
        return
    if type(obj) in (list, tuple, set, frozenset):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]", safe_globals)
        return
    if safe_globals and type(obj) in tuple(safe_globals):
        for k, v in getattr(obj, "__dict__", {}).items():
            check_plain(v, f"{where}.{k}", safe_globals)
        return
    raise TypeError(f"{where or 'object'}: a {type(obj).__module__}.{type(obj).__name__} cannot be saved "
                    "(only tensors, plain containers, numbers and strings load with weights_only=True)")


def save(obj: Any, path: str, keep_previous: str | None = None, safe_globals: Sequence[type] = ()) -> None:
    """Writes `obj` to `path` atomically (temporary file, fsync, rename). It must load with
    `load(path, safe_globals)`: plain containers, tensors and instances of `safe_globals`.

    keep_previous: a path the current `path` is moved to first, so that the last two
    versions exist (a later reader falls back to it when `path` is damaged). A failed
    write (disk full, ...) leaves `path` and `keep_previous` as they were and raises
    SaveError naming the file.
    """
    from bljust.utils.fileio import atomic_write

    check_plain(obj, os.path.basename(path), safe_globals)
    try:
        with atomic_write(path + ".partial", "wb", encoding=None) as f:
            torch.save(obj, f)
    except (OSError, RuntimeError) as e:  # torch's zip writer reports a failed write as RuntimeError
        if isinstance(e, RuntimeError) and "writ" not in str(e):
            raise
        why = (e.strerror if isinstance(e, OSError) and e.strerror else _reason(e))
        raise SaveError(f"cannot write {path}: {why}; the previous {os.path.basename(path)} is intact",
                        getattr(e, "errno", None)) from None
    if keep_previous and os.path.exists(path):
        os.replace(path, keep_previous)
    os.replace(path + ".partial", path)

