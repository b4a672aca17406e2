"""Process-group plumbing for ``torchrun``: who am I, which device, gather results.

The trainer runs unchanged in one process or under ``torchrun --nproc_per_node N``:
when torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) is present
a process group is started (NCCL on CUDA, gloo on CPU); otherwise every helper
here is a no-op for a world of one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from highlightzoo.device import resolve_device
from highlightzoo.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the (possibly one-process) world."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        """Only the main process (rank 0) writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank (``all_gather_object``)."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, value: float, weight: float) -> float:
        """Weighted mean of ``value`` over ranks."""
        if not self.distributed:
            return value
        pairs = self.gather((value * weight, weight))
        total = sum(w for _, w in pairs)
        return sum(v for v, _ in pairs) / total if total else float("nan")

    def close(self) -> None:
        """Destroy the process group if this context created it."""
        if self.initialized_here and dist.is_initialized():
            dist.destroy_process_group()


def launched_by_torchrun() -> bool:
    """True when torchrun (or an equivalent launcher) set the rendezvous environment."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def setup(device: str) -> tuple[DistContext, torch.device]:
    """Start the process group when launched by torchrun; pick this process's device.

    ``device``: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
    ``"cuda"`` or ``"cuda:K"``. Under torchrun on CUDA each process takes
    ``cuda:LOCAL_RANK``.
    """
    if not launched_by_torchrun():
        return DistContext(), resolve_device(device)
    rank, world, local = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    wanted = resolve_device(device)
    if wanted.type == "cuda":
        if torch.cuda.device_count() <= local:
            raise ConfigError(
                f"process with LOCAL_RANK={local} needs cuda:{local} but this machine has "
                f"{torch.cuda.device_count()} GPU(s); lower --nproc_per_node"
            )
        wanted = torch.device("cuda", local)
        torch.cuda.set_device(wanted)
    initialized_here = False
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if wanted.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        initialized_here = True
    return DistContext(rank, world, local, initialized_here), wanted


class ShardedBatchSampler(Sampler[list[int]]):
    """Fixed evaluation batches of consecutive indices, dealt round-robin to ranks.

    The batches are the same whatever the world size (batch ``k`` holds items
    ``k*B .. k*B+B-1`` of ``order``, default ``0 .. size-1``) and rank ``r``
    takes batches ``r, r+N, ...``; nothing is padded or repeated. So each video
    is scored in exactly the same batch as in a one-process run, and the
    gathered evaluation equals it. Evaluation passes an ``order`` sorted by
    video length, so a batch pads its videos to similar lengths.
    """

    def __init__(
        self, size: int, batch_size: int, rank: int = 0, world_size: int = 1,
        order: Sequence[int] | None = None,
    ) -> None:
        order = list(range(size)) if order is None else list(order)
        if sorted(order) != list(range(size)):
            raise ValueError(f"order must be a permutation of 0..{size - 1}")
        self.batches: Sequence[list[int]] = [
            order[s : s + batch_size] for s in range(0, size, batch_size)
        ][rank::world_size]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
