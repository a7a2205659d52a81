#!/usr/bin/env python3
"""LibriSpeech download layout -> Kaldi data dirs (see bljust/data/corpora/librispeech.py)."""
import argparse
import logging
import sys

from bljust.data.corpora import librispeech
from bljust.utils.fileio import FormatError
from bljust.utils.log import setup_logging


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--corpus_dir", required=True, help="directory holding LibriSpeech/")
    p.add_argument("--out_dir", default="data")
    p.add_argument("--labeled_sets", default="train-clean-100")
    p.add_argument("--unlabeled_sets", default="train-clean-360 train-other-500")
    p.add_argument("--eval_sets", default="dev-clean dev-other test-clean test-other")
    p.add_argument("--unlab_name", default="train_unlab")
    p.add_argument("--verbose", type=int, default=1)
    a = p.parse_args(argv)
    setup_logging(a.verbose)
    try:
        librispeech.prepare(a.corpus_dir, a.out_dir, a.labeled_sets.split(), a.unlabeled_sets.split(),
                            a.eval_sets.split(), unlab_name=a.unlab_name)
    except (FormatError, FileNotFoundError, ValueError) as e:
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
