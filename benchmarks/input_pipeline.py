"""Training images/s of lt-bench against a bare eager loop and a torchvision PIL + DataLoader pipeline.

All variants train the same ResNet-32 (+ linear head) with SGD on the same CIFAR-shaped uint8 images
held in memory, batch 128:

- bare:     the eager ceiling: pre-normalised float tensors, index, forward, CE, backward, step;
            no augmentation, no loader.
- pil:      the conventional pipeline: per image PIL conversion, RandomCrop(32, padding 4), flip,
            ToTensor, Normalize, in a DataLoader with persistent workers.
- lt-bench: `lt_bench.training.train` on a `TensorSplit` with the CIFAR-LT per-batch tensor
            augmentation (crop with padding 4, flip), checkpointing every epoch as real runs do.
- lt-bench+channels_last / lt-bench+compile: the same with the model in channels_last memory
            format / the backbone under torch.compile (with --channels-last / --compile).

Rounds interleave the variants (in a rotating order), so load from other processes hits all of them
alike; the report is the median images/s over the rounds after one untimed warm-up round.

    python benchmarks/input_pipeline.py [--rounds 7] [--steps 8] [--channels-last] [--compile]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from lt_bench.backbones import LongTailClassifier, accelerate, create_backbone
from lt_bench.data.base import TensorSplit
from lt_bench.data.sources.cifar import CIFAR_AUGMENTATION, CIFAR_MEAN, CIFAR_STD
from lt_bench.method import Method, MethodContext
from lt_bench.training import StagePlan, train

NUM_CLASSES = 10
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 2e-4


def make_model(channels_last: bool = False, compiled: bool = False) -> LongTailClassifier:
    torch.manual_seed(0)
    model = LongTailClassifier(create_backbone("resnet32_cifar", 3), nn.Linear(64, NUM_CLASSES))
    return accelerate(model, channels_last=channels_last, compile=compiled)  # as `lt-bench run` does


def sgd(model: nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


def step(model: nn.Module, optimizer: torch.optim.SGD, images: torch.Tensor, labels: torch.Tensor) -> None:
    _, logits = model(images)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    loss.item()


class BareLoop:
    """The eager ceiling: normalised float images already in memory, no augmentation."""

    name = "bare"

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> None:
        mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
        self.images = (images.float() / 255 - mean) / std
        self.labels, self.batch_size = labels, batch_size
        self.model = make_model()
        self.optimizer = sgd(self.model)

    def epoch(self, seed: int) -> None:
        order = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(seed))
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            indices = order[start : start + self.batch_size]
            step(self.model, self.optimizer, self.images[indices], self.labels[indices])


class PilImages(Dataset):
    """torchvision's CIFAR10 access pattern: uint8 HWC arrays → PIL image → transforms."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels
        self.transform = transforms.Compose(
            [
                transforms.RandomCrop(32, padding=4),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(CIFAR_MEAN, CIFAR_STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.images[index])), int(self.labels[index])


class PilPipeline:
    """The conventional pipeline: PIL transforms in DataLoader workers (persistent), shuffled."""

    name = "pil"

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, workers: int) -> None:
        dataset = PilImages(images.permute(0, 2, 3, 1).numpy().copy(), labels.numpy())
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=workers,
            persistent_workers=workers > 0,
        )
        self.model = make_model()
        self.optimizer = sgd(self.model)

    def epoch(self, seed: int) -> None:
        torch.manual_seed(seed)
        for images, labels in self.loader:
            step(self.model, self.optimizer, images, labels)


class LtBench:
    """lt-bench's own training loop on a TensorSplit, as `lt-bench run` trains CIFAR-LT."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        channels_last: bool,
        compiled: bool,
        folder: Path,
    ) -> None:
        self.name = (
            "lt-bench" + ("+channels_last" if channels_last else "") + ("+compile" if compiled else "")
        )
        self.split = TensorSplit(images, labels, CIFAR_MEAN, CIFAR_STD, CIFAR_AUGMENTATION)
        self.model = make_model(channels_last, compiled)
        counts = tuple(torch.bincount(labels, minlength=NUM_CLASSES).tolist())
        self.method = Method(
            MethodContext(
                dataset="benchmark",
                num_classes=NUM_CLASSES,
                class_counts=counts,
                feature_dim=64,
                epochs=1,
                steps_per_epoch=len(labels) // batch_size,
                base_lr=LR,
            )
        )
        self.batch_size, self.folder = batch_size, folder / self.name

    def epoch(self, seed: int) -> None:
        plan = StagePlan(
            epochs=1,
            batch_size=self.batch_size,
            learning_rate=lambda epoch: LR,
            momentum=MOMENTUM,
            weight_decay=WEIGHT_DECAY,
            seed=seed,
        )
        run_folder = self.folder / str(seed)
        train(
            self.model,
            self.method,
            self.split,
            plan,
            device=torch.device("cpu"),
            checkpoint_path=run_folder / "checkpoint.pt",
            log_path=run_folder / "log.jsonl",
            extra_checkpoint={},
            checkpoint_seconds=float("inf"),
        )


def images_per_second(epoch: Callable[[int], None], seed: int, images: int) -> float:
    started = time.perf_counter()
    epoch(seed)
    return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8, help="training steps per variant and round")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (after one warm-up round)")
    parser.add_argument("--pil-workers", type=int, default=2, help="DataLoader workers of the PIL pipeline")
    parser.add_argument("--channels-last", action="store_true", help="also time lt-bench in channels_last")
    parser.add_argument("--compile", action="store_true", help="also time lt-bench with torch.compile")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    count = args.steps * args.batch_size
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (count,), generator=generator)
    with tempfile.TemporaryDirectory() as folder:
        variants = [
            BareLoop(images, labels, args.batch_size),
            PilPipeline(images, labels, args.batch_size, args.pil_workers),
            LtBench(
                images, labels, args.batch_size, channels_last=False, compiled=False, folder=Path(folder)
            ),
        ]
        if args.channels_last:
            variants.append(
                LtBench(
                    images, labels, args.batch_size, channels_last=True, compiled=False, folder=Path(folder)
                )
            )
        if args.compile:
            variants.append(
                LtBench(
                    images, labels, args.batch_size, channels_last=False, compiled=True, folder=Path(folder)
                )
            )
        rates: dict[str, list[float]] = {variant.name: [] for variant in variants}
        for round_index in range(args.rounds + 1):
            shift = round_index % len(variants)  # rotate the order so no variant always runs first
            for variant in variants[shift:] + variants[:shift]:
                rate = images_per_second(variant.epoch, round_index, count)
                if round_index:  # round 0 warms up allocators, workers and compiled graphs
                    rates[variant.name].append(rate)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"{args.steps} steps x {args.rounds} rounds, ResNet-32 on 32x32 images"
    )
    print(f"{'variant':<26} {'images/s':>9} {'vs bare':>8} {'vs pil':>7}   rounds")
    for name, median in medians.items():
        rounds = " ".join(f"{value:.0f}" for value in rates[name])
        print(
            f"{name:<26} {median:>9.1f} {median / medians['bare']:>7.3f}x {median / medians['pil']:>6.3f}x   "
            f"{rounds}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"median_images_per_s": medians, "rounds": rates}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
