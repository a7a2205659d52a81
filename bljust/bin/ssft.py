"""LASER self-supervised fine-tuning of a HuBERT / WavLM upstream.

    python -m bljust.bin.ssft --config conf/ssft_hubert.yaml --train_data_dir data/train \
        --output_dir exp/ssft --upstream.ckpt hubert_base.pt [--dotted.key value ...]

Writes output_dir/{config.yaml, checkpoint.pth (resume), loss.png, upstream.pth}. A rerun
with the same output_dir resumes from checkpoint.pth.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from bljust.train.ssft import DEFAULTS, make_config, train_laser
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
        train_laser(conf)
    return 0


def _lock(conf: dict):
    """One run per output folder (<output_dir>/.lock)."""
    import contextlib

    return hold_dir(conf["output_dir"], "training") if conf.get("output_dir") else contextlib.nullcontext()


if __name__ == "__main__":
    sys.exit(main())
