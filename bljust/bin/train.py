"""Trains (or resumes) a Conformer-CTC model.

    python -m bljust.bin.train --config conf/train.yaml --train_data_dir dump/fbank/train \
        --valid_data_dir dump/fbank/dev --token_dir data/token_list/bpe_unigram256 \
        --cmvn dump/fbank/train/cmvn.ark --output_dir exp/asr_x --ngpu 0 [--encoder.num_layers 6 ...]

Any config key can be overridden with --dotted.key value (docs/config.md lists them all).
Running the same command again resumes from output_dir/checkpoint.pth (or, if that file is
damaged, from the checkpoint.prev.pth kept beside it). A folder whose run had other model or
feature settings (encoder, token list, CMVN, ...) is refused untouched: give another
--output_dir, or --resume false to start over in it. Only one training runs in a folder at a
time (output_dir/.lock). Errors are one line on stderr and exit status 1; --debug adds the
traceback.

Parallel runs: --ngpu N (N > 1) starts N processes on this node (NCCL); on CPU,
--world_size N --dist_backend gloo does the same. Under torchrun or srun the launcher's
environment (RANK/WORLD_SIZE/LOCAL_RANK, or SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID with
MASTER_ADDR/MASTER_PORT exported) decides, and no processes are spawned here.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Dict, List, Optional

from typeguard import typechecked

from bljust.train import distributed as D
from bljust.train.config import run_with_config
from bljust.utils.lock import hold_dir
from bljust.utils.log import setup_logging


def _worker(rank: int, config: Dict[str, Any], world_size: int, port: int, verbose: int, tokenizer: Any,
            resume: bool) -> None:
    os.environ.update(D.spawn_env(port))
    setup_logging(verbose if rank == 0 else 0)
    from bljust.train.run import train

    train(config, D.DistInfo(rank, rank, world_size), tokenizer, resume)


@typechecked
def run(config: Dict[str, Any], verbose: int = 1, tokenizer: Any = None, resume: bool = True) -> None:
    """Starts training in this process or in `world_size` spawned ones (tokenizer: for tests),
    holding the output folder's lock (rank 0 under torchrun / srun) while it runs."""
    from bljust.train.run import check_device

    check_device(config)
    env = D.env_dist_info()
    out = config.get("output_dir")
    if out and (env is None or env.rank == 0):
        with hold_dir(out, "training"):
            _run(config, verbose, tokenizer, resume, env)
    else:
        _run(config, verbose, tokenizer, resume, env)


def _run(config: Dict[str, Any], verbose: int, tokenizer: Any, resume: bool, env: Optional[D.DistInfo]) -> None:
    ngpu = int(config.get("ngpu", 0))
    world = ngpu if ngpu > 1 else int(config.get("world_size", 1))
    config["world_size"] = world
    from bljust.train.run import train

    if env is not None:  # torchrun / srun started us
        config["world_size"] = env.world_size
        if env.rank != 0:
            setup_logging(0)
        train(config, env, tokenizer, resume)
    elif int(config.get("num_nodes", 1)) > 1:
        raise RuntimeError("--num_nodes > 1 needs a launcher on every node: srun (one task per GPU, MASTER_ADDR "
                           "exported) or torchrun (RANK/WORLD_SIZE/LOCAL_RANK); see bljust/train/distributed.py")
    elif world > 1:
        import torch.multiprocessing as mp

        mp.spawn(_worker, args=(config, world, D.free_port(), verbose, tokenizer, resume), nprocs=world, join=True)
    else:
        train(config, D.DistInfo(), tokenizer, resume)


def main(argv: Optional[List[str]] = None) -> int:
    return run_with_config(argv, "train", __doc__, run, resume_option=True)


if __name__ == "__main__":
    sys.exit(main())
