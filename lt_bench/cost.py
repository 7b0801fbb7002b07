"""What a run cost: parameters, forward FLOPs per image, images seen, wall time and device-hours."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from lt_bench import distributed
from lt_bench.data.base import Split

Record = dict[str, Any]


@torch.no_grad()
def model_footprint(model: torch.nn.Module, split: Split, device: torch.device) -> dict[str, int]:
    """Trainable and total parameters, and the FLOPs of one eval-mode forward of one image of `split`
    through the whole model (backbone and head; torch's flop counter: a multiply-add is 2 FLOPs).
    Leaves every module's mode, the weights and the global random state as they were."""
    modes = {module: module.training for module in model.modules()}
    model.eval()
    with torch.random.fork_rng(devices=[]):  # a data loader may draw its seed from the global RNG
        images, _ = next(iter(split.batches([(0, torch.arange(1))], train=False, device=device)))
        counter = FlopCounterMode(display=False)
        with counter:
            model(images)
    for module, training in modes.items():
        module.training = training
    return {
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "flops_per_image": int(counter.get_total_flops()),
    }


def device_name(device: torch.device) -> str:
    """The accelerator's name, or the CPU model for a CPU run."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()


def cpu_model() -> str:
    """The CPU model as the kernel names it (Linux), else what Python's platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def run_cost(
    footprint: dict[str, int],
    *,
    images_seen: int,
    wall_time_s: float,
    device: torch.device,
    builds_on: Record | None = None,
    builds_on_timed: bool = False,
) -> dict[str, Any]:
    """The record's `cost` block. `builds_on` is the finished run this one continued from (a first
    stage, or the knob-free run whose weights it evaluated): its images seen, wall time and
    device-hours are added, the last two unless it ran within this run (`builds_on_timed`)."""
    devices = distributed.world_size()
    images, seconds, hours = images_seen, wall_time_s, wall_time_s * devices / 3600
    if builds_on is not None:
        earlier = builds_on.get("cost") or {}
        images += earlier.get("images_seen", _images_seen(builds_on))
        if not builds_on_timed:
            seconds += earlier.get("wall_time_s", builds_on["wall_time_s"])
            hours += earlier.get("device_hours", builds_on["wall_time_s"] / 3600)
    return {
        **footprint,
        "images_seen": int(images),
        "device": device_name(device),
        "devices": devices,
        "wall_time_s": round(seconds, 3),
        "device_hours": round(hours, 6),
    }


def _images_seen(record: Record) -> int:
    """Training images of a one-stage record made before cost accounting: epochs × full batches."""
    batch = record["config"]["batch_size"]
    return record["config"]["epochs"] * (sum(record["class_counts"]) // batch * batch)
