"""Training in a torch.distributed process group, as ``torchrun`` launches it.

``torchrun --nproc-per-node N -m graphrec train …`` starts N processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; ``joined`` initialises the group from them (gloo on
CPU, NCCL on CUDA, one GPU per local rank). Every rank trains the same model on the same
snapshot, which rank 0 reads and sends to the others; each optimiser step's batch is split by
rank (``Group.share``) and DistributedDataParallel averages the gradients, so a step of N
ranks is the step one process takes on the whole batch. Rank 0 alone evaluates (early
stopping gets its figure through ``Group.from_leader``), gates and writes the version; the
others wait at a barrier and exit. Outside ``torchrun`` the group is ``SINGLE`` and nothing
here runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T")
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # what torchrun sets for every process


@dataclass(frozen=True)
class Group:
    """This process's place in the training group: rank ``rank`` of ``size``; ``joined`` when
    a torch.distributed process group is initialised (under torchrun, even with one process)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    joined: bool = False

    @property
    def leader(self) -> bool:
        """Rank 0: the one that reads the store, evaluates and publishes."""
        return self.rank == 0

    def share(self, batch: np.ndarray) -> np.ndarray:
        """This rank's part of a step's ``batch``: ``size`` contiguous, near-equal parts."""
        return batch if self.size == 1 else np.array_split(batch, self.size)[self.rank]

    def step_rng(self, shared: np.random.Generator, seed: int) -> np.random.Generator:
        """The generator for a rank's own draws inside its steps (negatives, neighbourhoods).
        ``shared`` draws what every rank must draw alike (an epoch's permutation, its
        supervision pairs); alone, one process draws both from ``shared``, as it always has."""
        return shared if self.size == 1 else np.random.default_rng((seed, self.rank))

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` inside DistributedDataParallel when joined (rank 0's weights are sent to
        every rank; backward averages the gradients), else ``model`` itself."""
        if not self.joined:
            return model
        # Unused parameters: a sampled batch may have no edge of some behaviour.
        return DistributedDataParallel(model, find_unused_parameters=True)

    def from_leader(self, compute: Callable[[], T]) -> T:
        """Rank 0's ``compute()``, on every rank; the others do not call it."""
        if self.size == 1:
            return compute()
        box: list[object] = [compute() if self.leader else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]  # type: ignore[return-value]


SINGLE = Group()


def launched(environ: Mapping[str, str] = os.environ) -> Group | None:
    """The rank, size and local rank torchrun set; None outside torchrun."""
    if not all(name in environ for name in LAUNCH_ENV):
        return None
    rank, size, local_rank = (int(environ[name]) for name in LAUNCH_ENV)
    if not 0 <= rank < size:
        raise ValueError(f"RANK {rank} outside WORLD_SIZE {size}")
    return Group(rank, size, local_rank, joined=True)


def backend(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo for CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextmanager
def joined(device: torch.device, environ: Mapping[str, str] = os.environ) -> Iterator[Group]:
    """The process group torchrun launched this process into (``SINGLE`` outside torchrun):
    initialised on entry (on CUDA, this rank's GPU made the current device); on a normal exit
    every rank waits for the others at a barrier (rank 0 publishing) before it leaves."""
    group = launched(environ)
    if group is None:
        yield SINGLE
        return
    if device.type == "cuda":
        torch.cuda.set_device(group.local_rank)
    dist.init_process_group(backend(device), rank=group.rank, world_size=group.size)
    try:
        yield group
        dist.barrier()
    finally:
        dist.destroy_process_group()
