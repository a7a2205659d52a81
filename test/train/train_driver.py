"""Runs bljust.bin.train's launcher on a JSON config with the stand-in tokenizer (a subprocess in tests).

usage: train_driver.py CONFIG_JSON [SLEEP_AFTER_CHECKPOINT_SECONDS]
The optional sleep after each mid-run checkpoint gives a test time to SIGKILL the run.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_synth import CharTokenizer  # noqa: E402

from bljust.bin.train import run  # noqa: E402
from bljust.train.trainer import Trainer  # noqa: E402
from bljust.utils.log import setup_logging  # noqa: E402

if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        config = json.load(f)
    if len(sys.argv) > 2:
        pause = float(sys.argv[2])
        orig = Trainer.save_checkpoint

        def slow_save(self):
            orig(self)
            time.sleep(pause)

        Trainer.save_checkpoint = slow_save
    setup_logging(1)
    run(config, 1, CharTokenizer())
