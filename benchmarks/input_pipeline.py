"""Training images/s of lt-bench against a bare eager loop and a torchvision PIL + DataLoader pipeline.

All variants train the same ResNet-32 (+ a head) with SGD on the same CIFAR-shaped uint8 images
held in memory, batch 128:

- bare:     the eager ceiling: pre-normalised float tensors, index, forward, CE, backward, step;
            no augmentation, no loader.
- pil:      the conventional pipeline: per image PIL conversion, RandomCrop(32, padding 4), flip,
            ToTensor, Normalize, in a DataLoader with persistent workers.
- lt-bench: `lt_bench.training.train` on a `TensorSplit` with the CIFAR-LT per-batch tensor
            augmentation (crop with padding 4, flip), checkpointing every epoch as real runs do.
- bare+tde / lt-bench+tde: the same two with causal TDE's normalised multi-head classifier and its
            moving average of the features updated every step.
- lt-bench+channels_last / lt-bench+compile: lt-bench with the model in channels_last memory
            format / the backbone under torch.compile (with --channels-last / --compile).

Rounds interleave the variants (in a rotating order), so load from other processes hits all of them
alike; the report is the median images/s over the rounds after one untimed warm-up round.

    python benchmarks/input_pipeline.py [--rounds 7] [--steps 8] [--channels-last] [--compile]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from harness import LtBenchLoop, images_per_second, interleaved, make_model, medians, method_for, sgd
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from lt_bench.data.base import TensorSplit
from lt_bench.data.sources.cifar import CIFAR_AUGMENTATION, CIFAR_MEAN, CIFAR_STD
from lt_bench.method import Method
from lt_bench.methods.causal_tde import CausalNormClassifier, CausalTDE, update_moving_average

NUM_CLASSES = 10
BACKBONE = "resnet32_cifar"


def step(
    model: nn.Module, optimizer: torch.optim.SGD, images: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """forward, CE, backward, SGD step; the features are returned for a moving average."""
    features, logits = model(images)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return features.detach()


class BareLoop:
    """The eager ceiling: normalised float images already in memory, no augmentation; with `tde`,
    causal TDE's head and its moving average of the features."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, *, tde: bool) -> None:
        self.name = "bare+tde" if tde else "bare"
        mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
        self.images = (images.float() / 255 - mean) / std
        self.labels, self.batch_size = labels, batch_size
        self.model = make_model(BACKBONE, CausalNormClassifier(64, NUM_CLASSES) if tde else None)
        self.optimizer = sgd(self.model)
        self.moving_average = torch.zeros(64) if tde else None

    def epoch(self, seed: int) -> None:
        order = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(seed))
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            indices = order[start : start + self.batch_size]
            features = step(self.model, self.optimizer, self.images[indices], self.labels[indices])
            if self.moving_average is not None:
                self.moving_average = update_moving_average(self.moving_average, features)


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
        self.model = make_model(BACKBONE)
        self.optimizer = sgd(self.model)

    def epoch(self, seed: int) -> None:
        torch.manual_seed(seed)
        for images, labels in self.loader:
            step(self.model, self.optimizer, images, labels)


def lt_bench(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    folder: Path,
    *,
    tde: bool = False,
    channels_last: bool = False,
    compiled: bool = False,
) -> LtBenchLoop:
    """lt-bench's own loop on a TensorSplit, as `lt-bench run` trains CIFAR-LT (CE, or causal TDE)."""
    name = "lt-bench" + ("+tde" if tde else "") + ("+channels_last" if channels_last else "")
    name += "+compile" if compiled else ""
    method_class = CausalTDE if tde else Method
    model = make_model(BACKBONE, channels_last=channels_last, compiled=compiled)
    method = method_for(method_class, model, labels, batch_size)
    model.head = method.build_head()
    split = TensorSplit(images, labels, CIFAR_MEAN, CIFAR_STD, CIFAR_AUGMENTATION)
    return LtBenchLoop(
        name, model, method, split, batch_size=batch_size, folder=folder, device=torch.device("cpu")
    )


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
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        variants = [
            BareLoop(images, labels, args.batch_size, tde=False),
            PilPipeline(images, labels, args.batch_size, args.pil_workers),
            lt_bench(images, labels, args.batch_size, folder),
            BareLoop(images, labels, args.batch_size, tde=True),
            lt_bench(images, labels, args.batch_size, folder, tde=True),
        ]
        if args.channels_last:
            variants.append(lt_bench(images, labels, args.batch_size, folder, channels_last=True))
        if args.compile:
            variants.append(lt_bench(images, labels, args.batch_size, folder, compiled=True))
        rates = interleaved(
            variants,
            args.rounds,
            lambda variant, round_index: images_per_second(variant.epoch, round_index, count),
        )
    median = medians(rates)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"{args.steps} steps x {args.rounds} rounds, ResNet-32 on 32x32 images"
    )
    print(f"{'variant':<26} {'images/s':>9} {'vs bare':>8} {'vs pil':>7}   rounds")
    for name, value in median.items():
        bare = median["bare+tde" if "+tde" in name else "bare"]
        rounds = " ".join(f"{rate:.0f}" for rate in rates[name])
        print(f"{name:<26} {value:>9.1f} {value / bare:>7.3f}x {value / median['pil']:>6.3f}x   {rounds}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"median_images_per_s": median, "rounds": rates}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
