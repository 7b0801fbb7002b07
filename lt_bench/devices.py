"""Which device a run trains on, and how its record names it.

`--device auto` (the default) is the CUDA GPU when one is visible, else the CPU; under torchrun or
SLURM `distributed.start_from_environment` then takes the local rank's GPU.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch

from lt_bench.errors import UserError


def resolve_device(name: str) -> torch.device:
    """`--device` as a torch device this machine has."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"--device {name!r} is not usable here ({first_line}); pass --device auto") from error
    return device


def describe_device(device: torch.device, count: int) -> dict[str, Any]:
    """The record's `device`: its type, model name and how many of them trained the run."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {"type": device.type, "name": name, "count": count}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    for line in cpuinfo.read_text().splitlines() if cpuinfo.exists() else ():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()
