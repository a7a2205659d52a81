"""How every entry point ends on an error: one line on stderr, a non-zero exit status.

The line names what went wrong (the file, key or utterance is in the exception's
message); the traceback is only printed with --debug, for bug reports.
"""
from __future__ import annotations

import errno
import logging
import sys
from typing import Callable, List, Optional, Tuple

# errors whose message is the whole story: bad input, a missing or damaged file, a busy folder
_EXPECTED = (ValueError, OSError, LookupError, RuntimeError)


def pop_debug(argv: List[str]) -> Tuple[List[str], bool]:
    """(argv without --debug, whether it was given)."""
    return [a for a in argv if a != "--debug"], "--debug" in argv


def message(e: BaseException) -> str:
    if "Traceback (most recent call last)" in str(e):  # a spawned rank's or loader worker's error
        last = [ln for ln in str(e).splitlines() if ln.strip()][-1:] or [""]
        return f"{last[0].split(': ', 1)[-1]} (in another process; --debug for its traceback)"
    text = " ".join(str(e).split()) if str(e) else ""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC and "No space" not in text:
        text = f"no space left on device: {text}"
    if isinstance(e, KeyError):
        text = f"missing entry {text}"
    if not isinstance(e, _EXPECTED) or not text:
        text = f"{type(e).__name__}: {text or 'no message'} (rerun with --debug for the traceback)"
    return text


def run(fn: Callable[[], Optional[int]], debug: bool = False) -> int:
    """Runs the body of a main(); returns its exit status (1 on an error, 130 on Ctrl-C)."""
    try:
        rc = fn()
        return 0 if rc is None else int(rc)
    except KeyboardInterrupt:
        logging.error("interrupted")
        return 130
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - the last line of every entry point
        if debug:
            logging.exception("%s", message(e))
        else:
            logging.error("%s", message(e))
        return 1


def main_guard(argv: Optional[List[str]], body: Callable[[List[str]], Optional[int]]) -> int:
    """`body(argv)` with --debug taken out of argv and the errors reported as above."""
    args, debug = pop_debug(list(sys.argv[1:] if argv is None else argv))
    return run(lambda: body(args), debug)
