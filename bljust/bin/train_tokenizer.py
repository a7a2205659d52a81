"""Trains a SentencePiece tokenizer on the transcripts of a data dir; writes bpe.model and tokens.txt.

  python -m bljust.bin.train_tokenizer --text data/train/text --token_type bpe --bpemode unigram \
      --nbpe 300 --out_dir data/token_list/bpe_unigram300
  python -m bljust.bin.train_tokenizer --text data/train/text --token_type char --out_dir data/token_list/char
tokens.txt lists <blank>, <unk>, then the model's pieces (bljust.text.tokenizer.train_tokenizer).
--report_texts logs, per text file, the words and characters the model turns into <unk>
(counts and examples).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

import sentencepiece as spm

from bljust.text.coverage import report_coverage
from bljust.text.tokenizer import train_tokenizer
from bljust.utils.fileio import FormatError
from bljust.utils.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", required=True, help="Kaldi `text` file (utt id, then the transcript)")
    p.add_argument("--out_dir", required=True, help="e.g. data/token_list/bpe_unigram300")
    p.add_argument("--token_type", default="bpe", choices=["bpe", "char"])
    p.add_argument("--bpemode", default="unigram", choices=["unigram", "bpe"])
    p.add_argument("--nbpe", type=int, default=300)
    p.add_argument("--character_coverage", type=float, default=1.0)
    p.add_argument("--report_texts", nargs="*", default=[],
                   help="text files whose coverage (words/characters that become <unk>) is logged")
    p.add_argument("--verbose", type=int, default=1)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        train_tokenizer(args.text, args.out_dir, args.token_type, args.bpemode, args.nbpe, args.character_coverage)
        if args.report_texts:
            sp = spm.SentencePieceProcessor(model_file=os.path.join(args.out_dir, "bpe.model"))
            report_coverage(sp, [(os.path.dirname(t) or t, t) for t in args.report_texts])
        return 0
    except (FormatError, ValueError, OSError, RuntimeError) as e:
        logging.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
