"""What the benchmarks share: the model, lt-bench's own training loop as a variant, and interleaved
timing (rotating order, one untimed warm-up round, median of the rest)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from lt_bench.backbones import LongTailClassifier, accelerate, create_backbone
from lt_bench.data.base import Split
from lt_bench.method import Method, MethodContext
from lt_bench.training import StagePlan, train

LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 2e-4
CPU = torch.device("cpu")


class Variant(Protocol):
    name: str

    def epoch(self, seed: int) -> None: ...


def make_model(
    backbone: str,
    head: nn.Module | None = None,
    *,
    num_classes: int = 10,
    device: torch.device = CPU,
    channels_last: bool = False,
    compiled: bool = False,
) -> LongTailClassifier:
    """`backbone` (3 input channels, seed 0) and `head` (default: linear), placed as `lt-bench run`
    places them: on `device`, channels_last when asked or by default on CUDA, maybe compiled."""
    torch.manual_seed(0)
    features = create_backbone(backbone, 3)
    head = head if head is not None else nn.Linear(features.num_features, num_classes)
    model = LongTailClassifier(features, head).to(device)
    return accelerate(model, channels_last=channels_last, compile=compiled, device=device)


def sgd(model: nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def method_for(
    method_class: type[Method], model: LongTailClassifier, labels: torch.Tensor, batch_size: int
) -> Method:
    """A `method_class` instance for benchmark data: its context from the labels."""
    num_classes = int(labels.max()) + 1
    counts = tuple(torch.bincount(labels, minlength=num_classes).tolist())
    context = MethodContext(
        dataset="benchmark",
        num_classes=num_classes,
        class_counts=counts,
        feature_dim=model.backbone.num_features,
        epochs=1,
        steps_per_epoch=len(labels) // batch_size,
        base_lr=LR,
    )
    return method_class(context)


class LtBenchLoop:
    """`lt_bench.training.train` as `lt-bench run` uses it: one epoch a round, checkpointed at its
    end. `steps_seconds` and `checkpoint_seconds` split the last round's time at the epoch's end."""

    def __init__(
        self,
        name: str,
        model: LongTailClassifier,
        method: Method,
        split: Split,
        *,
        batch_size: int,
        folder: Path,
        device: torch.device,
        precision: str = "fp32",
    ) -> None:
        self.name, self.model, self.method, self.split = name, model, method, split
        self.batch_size, self.folder = batch_size, folder / name
        self.device, self.precision = device, precision
        self.steps_seconds = self.checkpoint_seconds = 0.0

    def epoch(self, seed: int) -> None:
        plan = StagePlan(
            epochs=1,
            batch_size=self.batch_size,
            learning_rate=lambda epoch: LR,
            momentum=MOMENTUM,
            weight_decay=WEIGHT_DECAY,
            seed=seed,
            precision=self.precision,
        )
        started = time.perf_counter()

        def steps_done(epoch: int) -> None:
            synchronize(self.device)
            self.steps_seconds = time.perf_counter() - started

        run_folder = self.folder / str(seed)
        train(
            self.model,
            self.method,
            self.split,
            plan,
            device=self.device,
            checkpoint_path=run_folder / "checkpoint.pt",
            log_path=run_folder / "log.jsonl",
            extra_checkpoint={},
            checkpoint_seconds=float("inf"),
            on_epoch_end=steps_done,
        )
        self.checkpoint_seconds = time.perf_counter() - started - self.steps_seconds


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def images_per_second(
    epoch: Callable[[int], None], seed: int, images: int, device: torch.device = CPU
) -> float:
    """Images per second of one call of `epoch(seed)` that trains on `images` images."""
    synchronize(device)
    started = time.perf_counter()
    epoch(seed)
    synchronize(device)
    return images / (time.perf_counter() - started)


def interleaved(
    variants: Sequence[Variant], rounds: int, measure: Callable[[Variant, int], float]
) -> dict[str, list[float]]:
    """`measure(variant, round)` over one warm-up round (dropped) and `rounds` timed rounds, each
    round in a rotated order so that no variant always runs first and outside load hits all alike."""
    values: dict[str, list[float]] = {variant.name: [] for variant in variants}
    for round_index in range(rounds + 1):
        shift = round_index % len(variants)
        for variant in [*variants[shift:], *variants[:shift]]:
            value = measure(variant, round_index)
            if round_index:  # round 0 warms up allocators, workers, kernels and compiled graphs
                values[variant.name].append(value)
    return values


def medians(values: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(series) for name, series in values.items()}
