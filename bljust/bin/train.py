"""Trains (or resumes) a Conformer-CTC model.

    python -m bljust.bin.train --config conf/train.yaml --train_data_dir dump/fbank/train \
        --valid_data_dir dump/fbank/dev --token_dir data/token_list/bpe_unigram256 \
        --cmvn dump/fbank/train/cmvn.ark --output_dir exp/asr_x --ngpu 0 [--encoder.num_layers 6 ...]

Any config key can be overridden with --dotted.key value (docs/config.md lists them all).
Running the same command again resumes from output_dir/checkpoint.pth. A config or
input error ends with one line on stderr and exit status 1; --debug shows the traceback.

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
from bljust.utils.log import setup_logging


def _worker(rank: int, config: Dict[str, Any], world_size: int, port: int, verbose: int, tokenizer: Any) -> None:
    os.environ.update(D.spawn_env(port))
    setup_logging(verbose if rank == 0 else 0)
    from bljust.train.trainer import train

    train(config, D.DistInfo(rank, rank, world_size), tokenizer)


@typechecked
def run(config: Dict[str, Any], verbose: int = 1, tokenizer: Any = None) -> None:
    """Starts training in this process or in `world_size` spawned ones (tokenizer: for tests)."""
    ngpu = int(config.get("ngpu", 0))
    world = ngpu if ngpu > 1 else int(config.get("world_size", 1))
    config["world_size"] = world
    from bljust.train.trainer import train

    env = D.env_dist_info()
    if env is not None:  # torchrun / srun started us
        config["world_size"] = env.world_size
        if env.rank != 0:
            setup_logging(0)
        train(config, env, tokenizer)
    elif int(config.get("num_nodes", 1)) > 1:
        raise RuntimeError("--num_nodes > 1 needs a launcher on every node: srun (one task per GPU, MASTER_ADDR "
                           "exported) or torchrun (RANK/WORLD_SIZE/LOCAL_RANK); see bljust/train/distributed.py")
    elif world > 1:
        import torch.multiprocessing as mp

        mp.spawn(_worker, args=(config, world, D.free_port(), verbose, tokenizer), nprocs=world, join=True)
    else:
        train(config, D.DistInfo(), tokenizer)


def main(argv: Optional[List[str]] = None) -> int:
    return run_with_config(argv, "train", __doc__, run)


if __name__ == "__main__":
    sys.exit(main())
