"""CMVN statistics of a feats.scp in Kaldi's 2 x (D+1) format.

Global (what the trainer's --cmvn reads):
  python -m bljust.bin.compute_cmvn --feats_scp dump/fbank/train/feats.scp --out dump/fbank/train/cmvn.ark
Per speaker (ark + scp keyed by speaker):
  python -m bljust.bin.compute_cmvn --feats_scp F --utt2spk data/train/utt2spk --out cmvn_spk.ark --out_scp cmvn_spk.scp
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from bljust.features.cmvn import compute_stats, write_global, write_per_key
from bljust.utils.fileio import FormatError
from bljust.utils.log import setup_logging


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--feats_scp", required=True)
    p.add_argument("--out", required=True, help="output stats (global: one matrix; per speaker: an ark)")
    p.add_argument("--utt2spk", help="compute per-speaker stats keyed by speaker")
    p.add_argument("--out_scp", help="scp for per-speaker stats (default: --out with .scp)")
    p.add_argument("--verbose", type=int, default=1)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        if not os.path.isfile(args.feats_scp):
            raise FileNotFoundError(f"feats scp not found: {args.feats_scp}")
        stats = compute_stats(args.feats_scp, args.utt2spk)
        if args.utt2spk:
            scp = args.out_scp or os.path.splitext(args.out)[0] + ".scp"
            write_per_key(args.out, scp, stats)
            logging.info("wrote stats of %d speakers to %s (%s)", len(stats), args.out, scp)
        else:
            write_global(args.out, stats["global"])
            logging.info("wrote global stats to %s", args.out)
        return 0
    except (FormatError, ValueError, OSError) as e:
        logging.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
