"""The training loop: SGD with momentum over a method's index stream, checkpointed every epoch."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from lt_bench.atomic import save_torch
from lt_bench.data.base import Split
from lt_bench.method import Method


@dataclass(frozen=True)
class StagePlan:
    """One training stage: how many epochs, at which learning rate per epoch."""

    epochs: int
    batch_size: int
    learning_rate: Callable[[int], float]
    momentum: float
    weight_decay: float
    seed: int


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        super().__init__(f"loss became {loss} at epoch {epoch + 1}, step {step + 1}")
        self.epoch, self.step, self.loss = epoch, step, loss


def derived_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (run seed, epoch, step)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (part + 0x9E3779B97F4A7C15 + (value << 6) + (value >> 2))) & (2**63 - 1)
    return value


def make_optimizer(model: nn.Module, plan: StagePlan) -> torch.optim.SGD:
    """SGD with momentum (the confounder the TDE paper studies) over the trainable parameters."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        parameters = [nn.Parameter(torch.zeros(0))]  # a stage with nothing to train still checkpoints
    return torch.optim.SGD(parameters, lr=plan.learning_rate(0), momentum=plan.momentum, weight_decay=plan.weight_decay)


def train(
    model: nn.Module,
    method: Method,
    split: Split,
    plan: StagePlan,
    *,
    device: torch.device,
    checkpoint_path: Path,
    log_path: Path,
    extra_checkpoint: dict[str, Any],
) -> None:
    """Train `model` for the epochs not yet in `checkpoint_path`, saving it after every epoch."""
    optimizer = make_optimizer(model, plan)
    start_epoch = 0
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        method.load_state_dict(state["method"])
        start_epoch = state["epoch"]
    steps = len(split) // plan.batch_size
    labels = split.labels
    progress = tqdm(range(start_epoch, plan.epochs), initial=start_epoch, total=plan.epochs, desc="train",
                    unit="epoch", disable=None, file=sys.stderr, leave=False)
    for epoch in progress:
        started = time.perf_counter()
        lr = plan.learning_rate(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        method.on_epoch_start(epoch, lr)
        order = method.sample_order(labels, torch.Generator().manual_seed(derived_seed(plan.seed, epoch)))
        batches = [
            (derived_seed(plan.seed, epoch, step), order[step * plan.batch_size : (step + 1) * plan.batch_size])
            for step in range(steps)
        ]
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        for step, (images, targets) in enumerate(split.batches(batches, train=True, device=device)):
            features = model.backbone(images)
            method.on_train_features(features.detach())
            logits = model.head(features)
            loss = method.loss(logits, targets)
            if not math.isfinite(loss.item()):
                raise TrainingDiverged(epoch, step, loss.item())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(targets)
            correct += int((logits.argmax(1) == targets).sum())
            seen += len(targets)
        entry = {
            "epoch": epoch + 1, "lr": lr, "loss": loss_sum / max(seen, 1), "train_top1": correct / max(seen, 1),
            "seconds": round(time.perf_counter() - started, 3),
        }
        progress.set_postfix(loss=f"{entry['loss']:.3f}")
        save_torch(checkpoint_path, {
            **extra_checkpoint, "epoch": epoch + 1, "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "method": method.state_dict(),
        })
        with log_path.open("a") as log:
            log.write(json.dumps(entry) + "\n")


@torch.no_grad()
def extract_features(backbone: nn.Module, split: Split, *, batch_size: int, device: torch.device) -> torch.Tensor:
    """Eval-mode backbone features of every image of `split`, in split order."""
    backbone.eval()
    indices = torch.arange(len(split))
    batches = [(0, indices[start : start + batch_size]) for start in range(0, len(split), batch_size)]
    return torch.cat([backbone(images) for images, _ in split.batches(batches, train=False, device=device)])
