"""One table for the methods of a comparison run: method, dev/test WER, wall time, passes.

    python -m bljust.bin.compare_results --out exp/compare/RESULTS.md exp/compare/supervised exp/compare/bljust_cpc ...

Each experiment folder must hold train_summary.yaml and its scored decodings (see
bljust.score.compare). Rerunnable at any time.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from bljust.score.compare import render, summarise
from bljust.utils.fileio import atomic_write
from bljust.utils.log import setup_logging


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("exps", nargs="+", help="experiment folders")
    ap.add_argument("--out", required=True, help="Markdown file to write")
    ap.add_argument("--inference_tag", default=None, help="the decoding to report (decode_* folder name)")
    args = ap.parse_args(argv)
    setup_logging(1)
    try:
        rows = [summarise(e, args.inference_tag) for e in args.exps]
    except (FileNotFoundError, ValueError) as e:
        logging.error("%s", e)
        return 1
    text = render(rows)
    with atomic_write(args.out) as f:
        f.write(text)
    logging.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
