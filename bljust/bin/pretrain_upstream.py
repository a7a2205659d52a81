"""Small HuBERT-style masked-prediction pre-training of an upstream (BEST-RQ targets).

    python -m bljust.bin.pretrain_upstream --config conf/pretrain_tiny.yaml \
        --train_data_dirs "[data/train, data/train_unlab]" --output_dir exp/pretrain

Writes output_dir/{config.yaml, checkpoint.pth (resume), loss.png, upstream.pth}.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from bljust.train.pretrain_upstream import DEFAULTS, pretrain
from bljust.train.ssft import make_config
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
    if isinstance(conf["train_data_dirs"], str):
        conf["train_data_dirs"] = conf["train_data_dirs"].split()
    with _lock(conf):
        pretrain(conf)
    return 0


def _lock(conf: dict):
    """One run per output folder (<output_dir>/.lock)."""
    import contextlib

    return hold_dir(conf["output_dir"], "training") if conf.get("output_dir") else contextlib.nullcontext()


if __name__ == "__main__":
    sys.exit(main())
