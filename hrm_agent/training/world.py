"""The distributed engine: which process this is, and the collectives the trainer needs.

Owns joining and leaving the ``torchrun`` process group, this rank's device, and the few
collectives of a step (gathering halting flags and rows, summing gradients and metrics, agreeing
on a stop). With one process each is a no-op or a copy, so a single-process run never touches
``torch.distributed``. Must not decide anything about training: it moves tensors, nothing else.

The design: the *global* batch and every random draw (puzzles, exploration) are made
identically on every rank from one seeded ``np.random.Generator``; each rank runs the model on
its contiguous slice of rows, halting decisions are all-gathered, and gradients are summed
(each rank's loss is its rows' share of the global mean). A 2-process run therefore matches a
1-process run with the same global batch up to float rounding. Only rank 0 logs, evaluates and
writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from hrm_agent.devices import resolve_device

__all__ = ["World", "init_world", "leave_world"]


@dataclass(frozen=True)
class World:
    """This process's place among the ``torchrun`` ranks (one rank when not launched so)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, evaluates and writes files."""
        return self.rank == 0

    def gather_flags(self, local: torch.Tensor) -> np.ndarray:
        """(b,) bool per rank -> (B,) bool numpy on every rank."""
        if self.size == 1:
            return local.cpu().numpy()
        parts = [torch.empty_like(local, dtype=torch.uint8) for _ in range(self.size)]
        dist.all_gather(parts, local.to(torch.uint8))
        return torch.cat(parts).cpu().numpy().astype(bool)

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """Per-rank rows (b, ...) -> the global batch's rows (B, ...) on the CPU."""
        if self.size == 1:
            return local.detach().cpu()
        parts = [torch.empty_like(local) for _ in range(self.size)]
        dist.all_gather(parts, local.detach().contiguous())
        return torch.cat(parts).cpu()

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks in place; returns it."""
        if self.size > 1:
            dist.all_reduce(tensor)
        return tensor

    def sum_gradients(self, module: torch.nn.Module) -> None:
        """Sum every parameter's gradient over ranks (one flat all-reduce)."""
        if self.size == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def agree_on_signal(self, received: int | None, device: torch.device) -> int | None:
        """The signal to stop on, agreed by every rank (the highest number any rank got), so
        that all ranks enter the collective save together; None: keep training."""
        if self.size == 1:
            return received
        flag = torch.tensor([received or 0], dtype=torch.int64, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None


def init_world(device_name: str) -> tuple[World, torch.device, bool]:
    """Join the torchrun process group when launched by torchrun; pick this rank's device.

    Returns:
        (world, device, whether this call created the process group).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    device_name = str(resolve_device(device_name))
    created = False
    if size > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = device_name.startswith("cuda")
        if cuda:
            device_name = f"cuda:{local_rank}"
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
            created = True
        world = World(dist.get_rank(), dist.get_world_size(), local_rank)
    else:
        world = World()
    return world, torch.device(device_name), created


def leave_world(wait_for_peers: bool) -> None:
    """Destroy the process group this process created.

    Rank 0 evaluates and writes the checkpoint after the last collective while the other ranks
    have nothing left to do. Tearing gloo down on one rank while a peer is still connected can
    abort the process ("terminate called without an active exception", seen once in CI), so
    after a finished run every rank waits here for the others first. After a failure the peers
    may never arrive, so then it leaves without waiting.
    """
    if not dist.is_initialized():
        return
    try:
        if wait_for_peers:
            dist.barrier()
    finally:
        dist.destroy_process_group()
