"""torch.distributed for the trainers: process setup from torchrun's environment, DDP or FSDP2
wrapping, and the few collectives the loop needs. A single process (no torchrun) is world size 1
and runs the same code with no process group."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass(frozen=True)
class Dist:
    """Where this process stands: its rank among ``world`` processes and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        """Only the main process writes files and prints."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of a scalar over processes (metrics for the log)."""
        if self.world == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is true on one (a NaN loss stops all of them)."""
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())


def setup() -> Dist:
    """Join torchrun's process group (NCCL on GPU, gloo on CPU), or stay a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world, local_rank=local_rank, device=device)


def teardown(d: Dist) -> None:
    if d.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, d: Dist, strategy: str, blocks: list[nn.Module] | None = None) -> nn.Module:
    """``module`` ready for data-parallel training: DDP, or FSDP2 with one ``fully_shard`` per
    block (``blocks``) and one for the rest. Unchanged in a single process."""
    if d.world == 1:
        return module
    if strategy == "ddp":
        # find_unused_parameters: a stage may leave a branch idle in a step (no camera, no refiner history).
        return nn.parallel.DistributedDataParallel(module, device_ids=[d.local_rank] if d.device.type == "cuda" else None,
                                                   find_unused_parameters=True)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in blocks or []:
            fully_shard(block)
        fully_shard(module)
        return module
    raise ValueError(f"strategy must be 'ddp' or 'fsdp', got {strategy!r}")


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module under a DDP wrapper (FSDP2 shards in place and needs no unwrapping)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module
