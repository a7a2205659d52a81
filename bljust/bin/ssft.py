"""LASER self-supervised fine-tuning of a HuBERT / WavLM upstream.

    python -m bljust.bin.ssft --config conf/ssft_hubert.yaml --train_data_dir data/train \
        --output_dir exp/ssft --upstream.ckpt hubert_base.pt [--dotted.key value ...]

Writes output_dir/{config.yaml, checkpoint.pth (resume), loss.png, upstream.pth}. A rerun
with the same output_dir resumes from checkpoint.pth.

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
    from bljust.train.ssft import train_laser

    # one run per output folder (<output_dir>/.lock); a missing output_dir is the trainer's error
    with hold_dir(conf["output_dir"], "training") if conf.get("output_dir") else contextlib.nullcontext():
        train_laser(conf)


def main(argv: Optional[List[str]] = None) -> int:
    return run_with_config(argv, "ssft", __doc__, run)



if __name__ == "__main__":
    sys.exit(main())
