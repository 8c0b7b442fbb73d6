"""Training on several processes: ``torchrun`` + DistributedDataParallel, nothing home-made.

``prgcn-train`` runs unchanged under ``torchrun --nproc_per_node N`` (or ``--nnodes`` with a
rendezvous for several machines): torchrun sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``, every
process builds the same model from the same seed, trains on its shard of each global batch
(``optim.batch_size`` stays the global batch), and DDP averages the gradients (gloo on CPU,
nccl on CUDA). Only rank 0 writes checkpoints, the model file and logs.
"""
from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> bool:
    """True when started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: str = "auto") -> DistInfo:
    """Join the process group torchrun describes (no-op for a single process).

    ``device`` ``auto``: this process's GPU (``LOCAL_RANK``) with nccl when CUDA is there,
    else the CPU with gloo; ``cuda``: that GPU (ValueError where there is no CUDA, as for one
    process); ``cpu``: gloo. ``cuda:N`` is refused: each process takes its own GPU.
    """
    if not launched() or dist.is_initialized():
        return info(device)
    if device.startswith("cuda:"):
        raise ValueError(f"device {device!r}: under torchrun each process takes its own GPU "
                         f"(LOCAL_RANK); use device cuda or auto (CUDA_VISIBLE_DEVICES chooses "
                         f"which GPUs)")
    if device != "auto":
        from prgcn_ros.model.backends import resolve_device
        resolve_device(device)          # CUDA asked for where there is none: refused
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return info(device)


def info(device: str = "cpu") -> DistInfo:
    """This process's place in the group and its device; without a group, rank 0 of 1 on
    ``device`` (auto, cpu, cuda[:N]; ValueError for CUDA where there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        from prgcn_ros.model.backends import resolve_device
        return DistInfo(device=resolve_device(device))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = dist.get_backend() == "nccl"
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank,
                    torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu"))


def wrap(model: nn.Module, where: DistInfo) -> nn.Module:
    """The model for forward/backward: DDP over the group, or the model itself."""
    if not where.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [where.local_rank] if where.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def shard(items: list, where: DistInfo) -> list:
    """This process's part of one global batch (every ``world``-th item from ``rank``)."""
    return items[where.rank::where.world] if where.enabled else items


def sum_all(values: list[float], where: DistInfo) -> list[float]:
    """Element-wise sums over the group (for statistics every rank needs)."""
    if not where.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64,
                          device=where.device if where.device.type == "cuda" else "cpu")
    dist.all_reduce(tensor)
    return [float(v) for v in tensor.cpu()]


def leave() -> None:
    """End of the group's work, on every rank at the same point right after its last
    collective: wait for the others, then destroy the group together, not one rank while
    another still works (nccl's communicators need every rank). The caller drops its DDP
    wrapper first: the wrapper's reducer holds the group."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()        # a DDP wrapper held only by a reference cycle goes now
        # A rank that failed since the last collective has left: the barrier then fails
        # (gloo) or waits until torchrun stops the others (nccl).
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()
        dist.destroy_process_group()


def teardown() -> None:
    """Leave the group wherever a process stops (an error included); no-op once left."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
