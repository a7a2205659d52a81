"""Runs one training method on a JSON config in a subprocess (tests that SIGKILL a run).

usage: train_driver.py CONFIG_JSON [SLEEP_AFTER_CHECKPOINT_SECONDS]
The config's "__method__" key picks the entry point: absent, the ASR launcher of
bljust.bin.train (supervised or bilevel, with the stand-in tokenizer); "ssft", "superb" or
"pretrain" the upstream methods. The optional sleep after each mid-run checkpoint (in the
training core, so for every method alike) gives a test time to SIGKILL the run.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_synth import CharTokenizer  # noqa: E402

from bljust.train.loop import TrainingLoop  # noqa: E402
from bljust.utils.log import setup_logging  # noqa: E402

if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        config = json.load(f)
    if len(sys.argv) > 2:
        pause = float(sys.argv[2])
        orig = TrainingLoop.save_checkpoint

        def slow_save(self):
            orig(self)
            if self.state["step"] < self.opts.total_steps:
                time.sleep(pause)

        TrainingLoop.save_checkpoint = slow_save
    setup_logging(1)
    method = config.pop("__method__", None)
    if method is None:
        from bljust.bin.train import run

        run(config, 1, CharTokenizer())
    elif method == "ssft":
        from bljust.train.ssft import train_laser

        train_laser(config)
    elif method == "superb":
        from bljust.train.superb_trainer import train_superb

        train_superb(config)
    elif method == "pretrain":
        from bljust.train.pretrain_upstream import pretrain

        pretrain(config)
    else:
        sys.exit(f"unknown __method__ {method}")
