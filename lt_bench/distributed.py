"""What methods need from multi-process training, identity when running in one process."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def global_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over all processes (each holding an equal share of the global batch)."""
    if not is_distributed():
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total / dist.get_world_size()
