"""Multi-GPU training without a framework: torchrun's environment decides everything.

`inclg train ...` runs on one device; `torchrun --nproc_per_node=N $(which inclg) train ...` runs
the same command as N DistributedDataParallel processes (NCCL on GPUs, gloo on CPUs). Only rank 0
logs and writes checkpoints; every rank reads its own shard of the sample stream.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from inclg.config import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job; a single process is rank 0 of a world of 1."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_ranks() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) as torchrun sets them; (0, 0, 1) outside torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, local, world


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The device named by `train.device`; "auto" is this process's GPU if there is one, else CPU.

    Under torchrun a bare "cuda" means the local rank's GPU, so one config serves any GPU count.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device={name!r} but CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def init(device_name: str = "auto", timeout_minutes: float = 30.0) -> DistInfo:
    """Join the torchrun job if there is one (else do nothing) and pick this process's device."""
    rank, local_rank, world = env_ranks()
    device = select_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=timeout_minutes),
                                device_id=device if device.type == "cuda" else None)
    return DistInfo(rank, local_rank, world, device)


def cleanup() -> None:
    """Leave the process group (a no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over all ranks in place (identity for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any rank (so all ranks stop at the same step)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def barrier() -> None:
    """Wait for every rank (a no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
