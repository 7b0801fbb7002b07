"""Images/s of lt-bench's file loader against torchvision's ImageFolder, same files, transforms, workers.

A generated ImageNet-LT-like tree of small JPEGs (random pixels, `--classes` folders) is read once
per round by each variant with the ImageNet-LT recipe's training transforms (RandomResizedCrop,
flip, ColorJitter) at `--size`:

- imagefolder: `torchvision.datasets.ImageFolder` in a `DataLoader` (shuffled, `--workers`).
- lt-bench:    `lt_bench.data.files.FileSplit.batches` in training mode, whose augmentation is
               seeded per (batch seed, position) so a resumed run draws the same crops.

Rounds interleave the variants (see `harness.interleaved`); the report is the median images/s and
the ratio lt-bench / imagefolder.

    python benchmarks/file_loader.py [--images 2000] [--workers 2] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from harness import interleaved, medians
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets

from lt_bench.data.files import FileSplit, imagenet_transforms
from lt_bench.data.split_lists import Origins

CPU = torch.device("cpu")


def write_tree(root: Path, images: int, classes: int, side: int) -> tuple[list[str], list[int]]:
    """`images` random-pixel JPEGs of `side`² in `classes` folders; their paths and labels."""
    generator = np.random.default_rng(0)
    paths, labels = [], []
    for index in range(images):
        label = index % classes
        folder = root / f"class{label:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{index:06d}.jpg"
        pixels = generator.integers(0, 256, (side, side, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
        labels.append(label)
    return paths, labels


class ImageFolderVariant:
    name = "imagefolder"

    def __init__(self, root: Path, transform, batch_size: int, workers: int) -> None:
        dataset = datasets.ImageFolder(str(root), transform=transform)
        self.loader = DataLoader(
            dataset, batch_size=batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0
        )
        self.size = len(dataset)

    def epoch(self, seed: int) -> float:
        torch.manual_seed(seed)
        started = time.perf_counter()
        for _images, _labels in self.loader:
            pass
        return self.size / (time.perf_counter() - started)


class LtBenchVariant:
    name = "lt-bench"

    def __init__(
        self, paths: list[str], labels: list[int], transforms, batch_size: int, workers: int
    ) -> None:
        origins = Origins(Path("generated.txt"))
        self.split = FileSplit(paths, torch.tensor(labels), origins, *transforms, num_workers=workers)
        self.batch_size = batch_size

    def epoch(self, seed: int) -> float:
        order = torch.randperm(len(self.split), generator=torch.Generator().manual_seed(seed))
        batches = [(seed * 100_003 + i, chunk) for i, chunk in enumerate(order.split(self.batch_size))]
        started = time.perf_counter()
        for _images, _labels in self.split.batches(batches, train=True, device=CPU):
            pass
        return len(self.split) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--side", type=int, default=96, help="pixels per side of the generated JPEGs")
    parser.add_argument("--size", type=int, default=64, help="the crop the transforms produce")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the medians and ratio here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_transform, eval_transform = imagenet_transforms(size=(args.size, args.size))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "train"
        paths, labels = write_tree(root, args.images, args.classes, args.side)
        variants = [
            ImageFolderVariant(root, train_transform, args.batch_size, args.workers),
            LtBenchVariant(paths, labels, (train_transform, eval_transform), args.batch_size, args.workers),
        ]
        rates = medians(interleaved(variants, args.rounds, lambda variant, seed: variant.epoch(seed)))
    ratio = rates["lt-bench"] / rates["imagefolder"]
    for name, rate in rates.items():
        print(f"{name:12s} {rate:8.1f} images/s")
    print(f"lt-bench / imagefolder: {ratio:.2f} ({args.images} JPEGs, {args.workers} workers)")
    if args.json:
        args.json.write_text(json.dumps({"median_images_per_s": rates, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
