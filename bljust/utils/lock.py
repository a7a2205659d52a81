"""One writer per output folder: an exclusive flock on a `.lock` file that names its holder.

Training, feature extraction and decoding hold the lock of the folder (or file) they
write for as long as they run; a second writer — a rerun started while an orphaned job
of a killed run.sh still trains, a duplicated command — exits at once with one line
naming the holder's pid and host instead of interleaving its files with the other's.
A job that run.pl started has its own process group, so killing run.sh's group leaves it
running: the lock file names its pid and process group (`kill -- -PGID` stops it).
The kernel drops the lock when the holder dies (even by SIGKILL), so a stale `.lock`
file never blocks anything; its content is only there to say who holds it.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
import time
from typing import Iterator


class LockError(RuntimeError):
    """Another process holds the lock."""


def _holder(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            fields = dict(x.split("=", 1) for x in f.read().split() if "=" in x)
    except (OSError, ValueError):
        fields = {}
    if not fields.get("pid"):
        return "another process"
    since = f", since {fields['since']}" if fields.get("since") else ""
    group = f", process group {fields['pgid']}" if fields.get("pgid") else ""
    return f"pid {fields['pid']} on host {fields.get('host', '?')} ({fields.get('what', 'a writer')}{since}{group})"


@contextlib.contextmanager
def hold(lock_file: str, what: str = "") -> Iterator[str]:
    """Holds an exclusive lock on `lock_file` (created if needed) or raises LockError at once."""
    d = os.path.dirname(os.path.abspath(lock_file))
    os.makedirs(d, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (BlockingIOError, PermissionError):
            raise LockError(f"{d} is in use by {_holder(lock_file)}: wait for it to finish or stop it "
                            f"(it holds {lock_file})") from None
        os.ftruncate(fd, 0)
        cmd = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
        os.write(fd, (f"pid={os.getpid()} pgid={os.getpgrp()} host={socket.gethostname()} "
                      f"what={(what or cmd).replace(' ', '_')} since={time.strftime('%Y-%m-%dT%H:%M:%S')}\n").encode())
        yield lock_file
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with a waiting writer)


def hold_dir(folder: str, what: str = "") -> "contextlib.AbstractContextManager[str]":
    """The lock of an output folder: <folder>/.lock."""
    return hold(os.path.join(folder, ".lock"), what)
