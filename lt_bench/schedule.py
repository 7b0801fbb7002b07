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
) -> float:
    """The learning rate of 0-based `epoch`.

    Warm-up rises linearly to `base_lr` over the first `warmup_epochs` (epoch e runs at
    base_lr·(e+1)/warmup, as in LDAM-DRW); "multistep" multiplies by `lr_decay` at each milestone
    passed; "cosine" follows base_lr·(1 + cos(π·t/T))/2 over the epochs after warm-up.
    """
    if epoch < warmup_epochs:
        return base_lr * (epoch + 1) / warmup_epochs
    if schedule == "multistep":
        return base_lr * lr_decay ** sum(epoch >= milestone for milestone in milestones)
    if schedule == "cosine":
        span = max(epochs - warmup_epochs, 1)
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / span))
    raise ValueError(f"unknown schedule {schedule!r}")
