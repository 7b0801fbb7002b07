"""Multi-process training (one process per GPU, DDP); every helper is the identity in one process.

A process group starts from the environment variables that `torchrun` sets (and that the SLURM
launcher exports from submitit's job environment): RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from lt_bench.errors import UserError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0: the one process that writes checkpoints, logs and records."""
    return rank() == 0


def start_from_environment(device: torch.device) -> torch.device:
    """Join the process group that WORLD_SIZE > 1 asks for (once); return this process's device.

    CUDA runs use NCCL and the GPU `cuda:LOCAL_RANK`; CPU runs use gloo.
    """
    processes = environment_count("WORLD_SIZE", 1)
    if processes > 1 and not is_distributed():
        check_process_group_environment(processes)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
    if is_distributed() and device.type == "cuda":
        device = torch.device("cuda", environment_count("LOCAL_RANK", 0, minimum=0))
        torch.cuda.set_device(device)
    return device


LAUNCHED = "launch through torchrun or lt-bench's SLURM launcher (they set it), or unset it"


def environment_count(name: str, default: int, *, minimum: int = 1) -> int:
    """The whole number >= `minimum` that a launcher put in the environment variable `name`, or
    `default` when it is unset; a one-line UserError naming the variable otherwise."""
    text = os.environ.get(name)
    if text is None:
        return default
    if not (text.strip().isascii() and text.strip().isdigit()) or int(text) < minimum:
        raise UserError(
            f"environment variable {name}={text!r} is not a whole number >= {minimum}; {LAUNCHED}"
        )
    return int(text)


def check_process_group_environment(processes: int) -> None:
    """What joining a process group of `processes` (WORLD_SIZE) needs besides: this process's RANK
    below it, and the MASTER_ADDR / MASTER_PORT of rank 0."""
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if not os.environ.get(name, "").strip():
            raise UserError(
                f"environment variable WORLD_SIZE={processes} asks for {processes} processes but {name} is "
                "not set; launch through torchrun or lt-bench's SLURM launcher (they set RANK, MASTER_ADDR "
                "and MASTER_PORT), or unset WORLD_SIZE"
            )
    rank_given = environment_count("RANK", 0, minimum=0)
    if rank_given >= processes:
        raise UserError(
            f"environment variable RANK={rank_given} is not below WORLD_SIZE={processes}; {LAUNCHED}"
        )
    port = environment_count("MASTER_PORT", 0)
    if port > 65535:
        raise UserError(f"environment variable MASTER_PORT={port} is not a port (1..65535); {LAUNCHED}")


def shard(indices: torch.Tensor) -> torch.Tensor:
    """This process's contiguous share of a global batch; the global batch must divide evenly."""
    size = world_size()
    if len(indices) % size:
        raise UserError(
            f"the global batch of {len(indices)} does not split over {size} processes; "
            f"pass a --batch-size divisible by {size}"
        )
    share = len(indices) // size
    return indices[rank() * share : (rank() + 1) * share]


def global_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over all processes (each holding an equal share of the global batch)."""
    if not is_distributed():
        return tensor
    return global_sum(tensor) / dist.get_world_size()


def global_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of `tensor` over all processes."""
    if not is_distributed():
        return tensor
    total = tensor.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def from_main_process(value: Any) -> Any:
    """Rank 0's `value`, on every process (e.g. the record only rank 0 computed)."""
    if not is_distributed():
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]
