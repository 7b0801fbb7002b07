"""Training images/s on the CUDA device: lt-bench's loop against a bare timm-style loop, in bf16.

For each case, both variants train the same model (timm backbone + linear head, seed 0) with SGD on
the same synthetic uint8 images held on the device, with the same batch (both variants stay
resident in one process, so the peak memory allocated counts both models and both image pools):

- lt-bench: `lt_bench.training.train` as `lt-bench run` uses it on CUDA: `--precision bf16` (the
            backbone under autocast, head and loss in fp32), channels_last (the CUDA default), a
            `TensorSplit` normalising (and for CIFAR cropping and flipping) each batch on the device,
            the loss and NaN check read every 50 steps, one checkpoint at the end of each epoch.
- bare:     the loop of timm's train.py without its loader: images normalised once in advance,
            channels_last model and input, forward and loss under bf16 autocast, backward, SGD step,
            nothing read back per step.

Cases: ResNet-32 on 32×32 images, batch 128 (CIFAR-10-LT), and ResNeXt-50 32x4d on 224×224
images, batch 256 (ImageNet-LT). Rounds interleave the variants in a rotating order after one
untimed warm-up round; the report is the median over rounds of images/s, lt-bench/bare, the peak
memory allocated, and the projected training time of a 200-epoch CIFAR-10-LT run (12,406 images) and
a 90-epoch ImageNet-LT run (115,846 images), lt-bench's per-epoch checkpoint included.

    python benchmarks/gpu_train.py [--rounds 5] [--device cuda]

Without a CUDA device it prints one line and exits 0. `--device cpu` runs the same code on the CPU
(small `--steps` and `--batch-size` make it a smoke test; no memory figures there).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from harness import LtBenchLoop, images_per_second, interleaved, make_model, medians, method_for, sgd
from torch import nn

from lt_bench.data.base import TensorAugmentation, TensorSplit
from lt_bench.data.files import IMAGENET_MEAN, IMAGENET_STD
from lt_bench.data.sources.cifar import CIFAR_AUGMENTATION, CIFAR_MEAN, CIFAR_STD
from lt_bench.method import Method
from lt_bench.precision import autocast

GIB = 2**30


@dataclass(frozen=True)
class Case:
    """One model on one kind of data, and the real run its figures are projected onto."""

    model: str
    backbone: str
    image_size: int
    num_classes: int
    batch_size: int
    steps: int  # per round and variant
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: TensorAugmentation
    run: str
    train_images: int
    epochs: int

    @property
    def title(self) -> str:
        return f"{self.model}, {self.image_size}x{self.image_size}, batch {self.batch_size}"


CASES = (
    Case("ResNet-32", "resnet32_cifar", 32, 10, 128, 96, CIFAR_MEAN, CIFAR_STD,
         CIFAR_AUGMENTATION, "CIFAR-10-LT", 12_406, 200),
    Case("ResNeXt-50 32x4d", "resnext50_32x4d", 224, 1000, 256, 20, IMAGENET_MEAN,
         IMAGENET_STD, TensorAugmentation(), "ImageNet-LT", 115_846, 90),
)  # fmt: skip


class TimmStyleLoop:
    """timm train.py's step without its loader: bf16 autocast over forward and loss, channels_last."""

    name = "bare"

    def __init__(self, case: Case, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> None:
        mean = torch.tensor(case.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(case.std, device=device).view(1, -1, 1, 1)
        normalised = (images.float() / 255 - mean) / std
        self.images = normalised.contiguous(memory_format=torch.channels_last)
        self.labels, self.batch_size, self.device = labels, case.batch_size, device
        classifier = make_model(case.backbone, num_classes=case.num_classes, device=device)
        self.model = nn.Sequential(classifier.backbone, classifier.head).to(memory_format=torch.channels_last)
        self.optimizer = sgd(self.model)

    def epoch(self, seed: int) -> None:
        order = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(seed))
        for start in range(0, len(order) - self.batch_size + 1, self.batch_size):
            indices = order[start : start + self.batch_size].to(self.device, non_blocking=True)
            with autocast("bf16", self.device):
                loss = F.cross_entropy(self.model(self.images[indices]), self.labels[indices])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


def measure_case(case: Case, rounds: int, device: torch.device, folder: Path) -> dict:
    """Both variants of `case`, interleaved: median images/s, peak memory, projected run time."""
    count = case.steps * case.batch_size
    generator = torch.Generator().manual_seed(0)
    shape = (count, 3, case.image_size, case.image_size)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator).to(device)
    labels = torch.randint(0, case.num_classes, (count,), generator=generator).to(device)
    model = make_model(case.backbone, num_classes=case.num_classes, device=device)
    method = method_for(Method, model, labels.cpu(), case.batch_size)
    split = TensorSplit(images, labels, case.mean, case.std, case.augmentation)
    lt_bench = LtBenchLoop(
        "lt-bench", model, method, split, batch_size=case.batch_size, folder=folder, device=device,
        precision="bf16",
    )  # fmt: skip
    variants = [lt_bench, TimmStyleLoop(case, images, labels, device)]
    peaks: dict[str, list[float]] = {variant.name: [] for variant in variants}
    checkpoints: list[float] = []

    def measure(variant, round_index: int) -> float:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rate = images_per_second(variant.epoch, round_index, count, device)
        if device.type == "cuda":
            peaks[variant.name].append(torch.cuda.max_memory_allocated(device) / GIB)
        if variant is lt_bench:
            checkpoints.append(lt_bench.checkpoint_seconds)
            return count / lt_bench.steps_seconds  # the steps alone; the checkpoint is projected apart
        return rate

    rates = interleaved(variants, rounds, measure)
    median = medians(rates)
    checkpoint_seconds = statistics.median(checkpoints[1:] or checkpoints)
    epoch_seconds = {
        "lt-bench": case.train_images / median["lt-bench"] + checkpoint_seconds,
        "bare": case.train_images / median["bare"],
    }
    return {
        "case": case.title,
        "images_per_s": median,
        "rounds": rates,
        "ratio": median["lt-bench"] / median["bare"],
        "peak_memory_gib": {name: max(values) if values else None for name, values in peaks.items()},
        "checkpoint_s": checkpoint_seconds,
        "projected_hours": {name: case.epochs * s / 3600 for name, s in epoch_seconds.items()},
        "run": f"{case.epochs}-epoch {case.run} ({case.train_images:,} images)",
    }


def report(result: dict) -> str:
    lines = [f"{result['case']}: lt-bench / bare = {result['ratio']:.3f}"]
    for name in ("lt-bench", "bare"):
        peak = result["peak_memory_gib"][name]
        memory = "n/a" if peak is None else f"{peak:.2f} GiB"
        rounds = " ".join(f"{rate:.0f}" for rate in result["rounds"][name])
        lines.append(
            f"  {name:<9} {result['images_per_s'][name]:>9.1f} images/s  peak {memory:>10}  "
            f"{result['run']}: {result['projected_hours'][name]:.2f} h   rounds {rounds}"
        )
    lines.append(
        f"  lt-bench checkpoint at each epoch's end: {result['checkpoint_s']:.2f} s (in its projection)"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (after one warm-up round)")
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a smoke test")
    parser.add_argument("--steps", type=int, help="steps per round and variant (default: per case)")
    parser.add_argument("--batch-size", type=int, help="batch of every case (default: per case)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_train: no CUDA device is visible here; nothing measured (pass --device cpu for a smoke test)"
        )
        return
    overrides = {
        name: value for name, value in (("steps", args.steps), ("batch_size", args.batch_size)) if value
    }
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}, bf16, {args.rounds} rounds after a warm-up round")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for case in CASES:
            case = dataclasses.replace(case, **overrides)
            results.append(measure_case(case, args.rounds, device, Path(folder) / case.backbone))
            print(report(results[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
