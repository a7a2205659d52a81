"""Writes RESULTS.md from every score_<metric>/result.txt under an experiment root.

    python -m bljust.bin.make_results exp [--output exp/RESULTS.md]
    python -m bljust.bin.make_results exp/asr_x        (one experiment)
    python -m bljust.bin.make_results exp --note "a line under the title" [--note ...]

Layouts: <root>/<exp>/decode*/[<set>/]score_*/result.txt, or <exp>/decode*/[<set>/]score_*/...
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from typeguard import typechecked

from bljust.score.results import collect, render
from bljust.utils.fileio import atomic_write
from bljust.utils.log import setup_logging


@typechecked
def make_results(exp_root: str, output: str | None = None, notes: Sequence[str] = ()) -> str:
    if not os.path.isdir(exp_root):
        raise FileNotFoundError(f"{exp_root}: no such experiment directory")
    output = output or os.path.join(exp_root, "RESULTS.md")
    results = collect(exp_root)
    with atomic_write(output) as f:
        f.write(render(exp_root, results, notes=notes))
    n = sum(len(rows) for m in results.values() for rows in m.values())
    logging.info("wrote %s (%d experiment(s), %d scored decoding(s))", output, len(results), n)
    return output


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exp_root", help="experiment root (exp) or one experiment (exp/asr_x)")
    p.add_argument("--output", "--out", dest="output", default=None, help="default: <exp_root>/RESULTS.md")
    p.add_argument("--note", action="append", default=[], help="a line under the title (repeatable)")
    p.add_argument("--verbose", type=int, default=1)
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    try:
        make_results(a.exp_root, a.output, a.note)
    except (FileNotFoundError, ValueError) as e:
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
