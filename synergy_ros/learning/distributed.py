"""Multi-process training helpers (``torchrun``): process group set-up, rank-0 checks, flags.

``torchrun --nproc_per_node N -m synergy_ros train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in their environment;
:func:`init_distributed` reads them (a plain ``synergy train`` has none and runs as the single
rank 0). CUDA processes use NCCL, CPU ones gloo.
"""
from __future__ import annotations

import dataclasses
import os

from synergy_ros.core.errors import SynergyError


@dataclasses.dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, GPU ``local_rank``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints progress (rank 0)."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise SynergyError(f"environment variable {name}={value!r} is not an integer; "
                           "start multi-process training with torchrun") from None


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group described by the torchrun environment (no-op for one process).

    Args:
        device_type: ``"cuda"`` (NCCL backend, one GPU per local rank) or ``"cpu"`` (gloo).
    """
    world = _env_int("WORLD_SIZE", 1)
    info = DistInfo(rank=_env_int("RANK", 0), world_size=world,
                    local_rank=_env_int("LOCAL_RANK", 0))
    if world <= 1:
        return info
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise SynergyError("this torch build has no torch.distributed; train with one process")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise SynergyError(f"WORLD_SIZE={world} but {name} is not set; start multi-process "
                               "training with `torchrun --nproc_per_node N -m synergy_ros train`")
    if device_type == "cuda":
        if torch.cuda.device_count() <= info.local_rank:
            raise SynergyError(f"LOCAL_RANK {info.local_rank} has no GPU (found "
                               f"{torch.cuda.device_count()}); use --nproc_per_node <= GPUs")
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo",
                                rank=info.rank, world_size=world)
    return info


def shutdown_distributed(info: DistInfo) -> None:
    """Leave the process group (if this process joined one)."""
    if info.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def any_rank(flag: bool, info: DistInfo, device: object = "cpu") -> bool:
    """True if ``flag`` is true on any rank (an all-reduce; plain ``flag`` for one process)."""
    if not info.enabled:
        return bool(flag)
    import torch
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for one process)."""
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()
