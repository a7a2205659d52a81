"""Trains a SUPERB downstream (ASR: BiLSTM-CTC over characters; PR: linear CTC over
phonemes) on a frozen upstream's weighted sum of layers.

    python -m bljust.bin.train_superb --config conf/superb_asr.yaml --train_data_dir data/train \
        --valid_data_dir data/dev --output_dir exp/superb_asr --upstream.ckpt exp/ssft/upstream.pth

A rerun with the same output_dir resumes from checkpoint.pth.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from bljust.train.ssft import make_config
from bljust.train.superb_trainer import DEFAULTS, train_superb
from bljust.utils import cli
from bljust.utils.lock import hold_dir
from bljust.utils.log import setup_logging


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML; any key can be overridden as --dotted.key value")
    p.add_argument("--verbose", type=int, default=1)
    p.add_argument("--debug", action="store_true", help="print the traceback of an error")
    args, rest = p.parse_known_args(argv)
    setup_logging(args.verbose)
    return cli.run(lambda: _main(args, rest), args.debug)


def _main(args: argparse.Namespace, rest: List[str]) -> int:
    conf = make_config(DEFAULTS, args.config, rest)
    with _lock(conf):
        train_superb(conf)
    return 0


def _lock(conf: dict):
    """One run per output folder (<output_dir>/.lock)."""
    import contextlib

    return hold_dir(conf["output_dir"], "training") if conf.get("output_dir") else contextlib.nullcontext()


if __name__ == "__main__":
    sys.exit(main())
