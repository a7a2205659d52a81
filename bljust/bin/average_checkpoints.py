"""Averages model files, either given explicitly or the best K epochs of a training run.

    python -m bljust.bin.average_checkpoints --output exp/asr/avg.pth exp/asr/3epoch.pth exp/asr/4epoch.pth
    python -m bljust.bin.average_checkpoints --exp_dir exp/asr --metric valid_cer --nbest 5 [--output ...]

With --exp_dir the epochs are ranked by the validation history in exp_dir/checkpoint.pth
(only epoch files still on disk count) and model.pth is pointed at the result.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from typeguard import typechecked

from bljust.train.checkpoint import average_state_dicts, best_epochs, link, load_checkpoint, save_atomic
from bljust.utils import cli
from bljust.utils.lock import hold_dir
from bljust.utils.log import setup_logging


@typechecked
def average_best(exp_dir: str, metric: str, nbest: int, output: Optional[str] = None) -> str:
    ck, _ = load_checkpoint(exp_dir, required=("loop",))
    hist = [h for h in ck["loop"]["history"] if os.path.exists(os.path.join(exp_dir, f"{h['epoch']}epoch.pth"))]
    epochs = best_epochs(hist, metric, nbest)
    if not epochs:
        raise ValueError(f"{exp_dir}: no epoch files with a '{metric}' value")
    output = output or os.path.join(exp_dir, f"{metric.replace('_', '.')}.ave_{nbest}best.pth")
    save_atomic(average_state_dicts([os.path.join(exp_dir, f"{e}epoch.pth") for e in epochs]), output)
    if os.path.dirname(os.path.abspath(output)) == os.path.abspath(exp_dir):
        link(os.path.basename(output), os.path.join(exp_dir, "model.pth"))
    logging.info("averaged epochs %s by %s into %s", epochs, metric, output)
    return output


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="model or checkpoint files to average")
    ap.add_argument("--output", help="output model file")
    ap.add_argument("--exp_dir", help="training output dir: pick the best epochs from its history")
    ap.add_argument("--metric", default="valid_cer", choices=["valid_cer", "valid_loss"])
    ap.add_argument("--nbest", type=int, default=5)
    ap.add_argument("--verbose", type=int, default=1)
    ap.add_argument("--debug", action="store_true", help="print the traceback of an error")
    a = ap.parse_args(argv)
    setup_logging(a.verbose)
    if not a.exp_dir and (not a.models or not a.output):
        ap.error("give model files and --output, or --exp_dir")

    def body() -> None:
        if a.exp_dir:
            with hold_dir(a.exp_dir, "averaging checkpoints"):  # not while a training writes there
                average_best(a.exp_dir, a.metric, a.nbest, a.output)
        else:
            save_atomic(average_state_dicts(a.models), a.output)
            logging.info("averaged %d models into %s", len(a.models), a.output)

    return cli.run(body, a.debug)


if __name__ == "__main__":
    sys.exit(main())
