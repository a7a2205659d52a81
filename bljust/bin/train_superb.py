"""Trains a SUPERB downstream (ASR: BiLSTM-CTC over characters; PR: linear CTC over
phonemes) on a frozen upstream's weighted sum of layers.

    python -m bljust.bin.train_superb --config conf/superb_asr.yaml --train_data_dir data/train \
        --valid_data_dir data/dev --output_dir exp/superb_asr --upstream.ckpt exp/ssft/upstream.pth

A rerun with the same output_dir resumes from checkpoint.pth.

Any key of docs/config.md can be overridden as --dotted.key value; an error ends with one
line on stderr and exit status 1 (--debug: the traceback).
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Dict, List, Optional

from bljust.train.config import run_with_config
from bljust.utils.lock import hold_dir


def run(conf: Dict[str, Any], verbose: int = 1) -> None:
    from bljust.train.superb_trainer import train_superb

    # one run per output folder (<output_dir>/.lock); a missing output_dir is the trainer's error
    with hold_dir(conf["output_dir"], "training") if conf.get("output_dir") else contextlib.nullcontext():
        train_superb(conf)


def main(argv: Optional[List[str]] = None) -> int:
    return run_with_config(argv, "superb", __doc__, run)



if __name__ == "__main__":
    sys.exit(main())
