"""Per-epoch learning rates: linear warm-up, then cosine to zero or multi-step decay."""

from __future__ import annotations

import math
from collections.abc import Sequence


def learning_rate(
    epoch: int,
    *,
    base_lr: float,
    epochs: int,
    schedule: str,
    warmup_epochs: int = 0,
    milestones: Sequence[int] = (),
    lr_decay: float = 0.1,
    warmup_start: float = 0.0,
) -> float:
    """The learning rate of 0-based `epoch`.

    Warm-up rises linearly from the fraction s = `warmup_start` to `base_lr` over the first
    `warmup_epochs`: epoch e runs at base_lr·(s + (1 − s)·(e+1)/warmup) (s = 0: LDAM-DRW; s = 1/3:
    BBN's and TDE's WarmupMultiStepLR stepped at each epoch's start); "multistep" multiplies by
    `lr_decay` at each milestone reached (epoch >= milestone); "cosine" follows
    base_lr·(1 + cos(π·t/T))/2 over the epochs after warm-up.
    """
    if epoch < warmup_epochs:
        # Written so that s = 0 is bit for bit base_lr·(e+1)/warmup.
        return base_lr * warmup_start + base_lr * (1.0 - warmup_start) * (epoch + 1) / warmup_epochs
    if schedule == "multistep":
        return base_lr * lr_decay ** sum(epoch >= milestone for milestone in milestones)
    if schedule == "cosine":
        span = max(epochs - warmup_epochs, 1)
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / span))
    raise ValueError(f"unknown schedule {schedule!r}")
