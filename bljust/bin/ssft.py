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
from bljust.utils.log import setup_logging


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML; any key can be overridden as --dotted.key value")
    p.add_argument("--verbose", type=int, default=1)
    args, rest = p.parse_known_args(argv)
    setup_logging(args.verbose)
    conf = make_config(DEFAULTS, args.config, rest)
    train_laser(conf)
    return 0


if __name__ == "__main__":
    sys.exit(main())
