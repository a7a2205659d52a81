"""Process-group setup for data-parallel training on one node or many.

How a process learns its place, in order of precedence:
- torchrun / torch.distributed.run: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT.
- Slurm (srun, one task per GPU): SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; MASTER_ADDR
  must be exported by the job script (e.g. the first host of `scontrol show hostnames
  $SLURM_JOB_NODELIST`) and MASTER_PORT defaults to 29500.
- Otherwise bin/train spawns `world_size` local processes itself (single node).

Two nodes with four GPUs each, under Slurm:
    #SBATCH --nodes=2 --ntasks-per-node=4 --gpus-per-node=4
    export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1) MASTER_PORT=29500
    srun python -m bljust.bin.train --config conf/train.yaml ... --ngpu 4 --num_nodes 2
or with torchrun on each node:
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint HOST:29500 \
        -m bljust.bin.train --config conf/train.yaml ... --ngpu 4 --num_nodes 2
"""
from __future__ import annotations

import datetime
import os
import socket
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    backend: Optional[str] = None

    @property
    def is_master(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_dist_info() -> Optional[DistInfo]:
    """The rank layout given by a launcher's environment, or None when there is none."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistInfo(int(env["RANK"]), int(env.get("LOCAL_RANK", 0)), int(env["WORLD_SIZE"]))
    if "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        return DistInfo(int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", 0)), int(env["SLURM_NTASKS"]))
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(info: DistInfo, use_cuda: bool) -> DistInfo:
    if not info.enabled:
        return info
    info.backend = info.backend or ("nccl" if use_cuda else "gloo")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    # rank 0 validates alone at the end of an epoch while the others wait: allow for it
    dist.init_process_group(info.backend, rank=info.rank, world_size=info.world_size,
                            timeout=datetime.timedelta(minutes=60))
    return info


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def any_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when `flag` is true on some rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t)
    return bool(t.item() > 0)


def gather_objects(obj: Any, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def spawn_env(port: int) -> Dict[str, str]:
    return {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
