"""Done-markers that record what a recipe stage was computed from (see bljust.utils.stamp).

  python -m bljust.bin.stage_stamp check <marker> --files data/x/wav.scp data/x/text \
      --audio_of data/x/wav.scp --opt fs=16000 --opt cmvn_type=global
exits 0 when <marker> records exactly these inputs (the stage is done), 1 otherwise,
printing what changed; `write` records them (after the stage succeeded).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from bljust.utils.stamp import make_stamp, stamp_changes, write_stamp


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["check", "write"])
    p.add_argument("marker")
    p.add_argument("--files", nargs="*", default=[], help="input files, hashed by content (absent ones recorded)")
    p.add_argument("--audio_of", help="a wav.scp whose audio files are recorded by size and mtime")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="an option of the stage")
    a = p.parse_args(argv)
    opts = {}
    for kv in a.opt:
        if "=" not in kv:
            p.error(f"--opt expects KEY=VALUE, got '{kv}'")
        k, v = kv.split("=", 1)
        opts[k] = v
    try:
        stamp = make_stamp(a.files, opts, a.audio_of)
    except OSError as e:
        print(f"stage_stamp: {e}", file=sys.stderr)
        return 2
    if a.action == "write":
        write_stamp(a.marker, stamp)
        return 0
    changes = stamp_changes(a.marker, stamp)
    if changes:
        print("; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else ""))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
