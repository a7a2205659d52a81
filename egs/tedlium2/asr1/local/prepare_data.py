#!/usr/bin/env python3
"""TED-LIUM release 2 download layout -> Kaldi data dirs (see bljust/data/corpora/tedlium.py)."""
import argparse
import logging
import os
import sys

from bljust.data.corpora import tedlium
from bljust.utils.fileio import FormatError
from bljust.utils.log import setup_logging


def _opt(cast):
    return lambda s: cast(s) if s not in ("", "none", "None") else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--corpus_dir", required=True, help="directory holding TEDLIUM_release2/")
    p.add_argument("--out_dir", default="data")
    p.add_argument("--labeled_talks", type=_opt(int), default=None,
                   help="labeled part of train: this many talks (a fixed md5 order)")
    p.add_argument("--labeled_hours", type=_opt(float), default=None,
                   help="labeled part of train: talks up to this many hours; neither: all of train")
    p.add_argument("--train_name", default="train")
    p.add_argument("--unlab_name", default="train_unlab")
    p.add_argument("--glm", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "tedlium2.glm"),
                   help="scoring filter copied next to each stm")
    p.add_argument("--verbose", type=int, default=1)
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    try:
        tedlium.prepare(a.corpus_dir, a.out_dir, labeled_talks=a.labeled_talks,
                        labeled_hours=a.labeled_hours, train_name=a.train_name, unlab_name=a.unlab_name, glm=a.glm)
    except (FormatError, FileNotFoundError, ValueError) as e:
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
