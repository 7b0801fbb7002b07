"""Per-epoch training time of `--finetune linear` (head on cached features) against `--finetune full`.

Both are real `lt-bench run`s of the same method, data and backbone in this one process, so they see
the same machine load; the per-epoch time is the median of the epochs' training seconds from the run
logs (validation passes are off). Linear mode also pays once per run for the cached features (one
eval-mode pass over the training set, outside the epochs): the runs' wall times are shown too.

The backbone starts from a weights file (its own random initialisation, standing in for published
weights), so a timm model with a pretrained config sees its own input: the default ViT-Ti/16 takes
the digits at 224×224, where the backbone's forward and backward dominate a step, as in a real probe.

    python benchmarks/linear_probe.py [--dataset digits_lt] [--backbone vit_tiny_patch16_224] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from lt_bench.backbones import create_backbone
from lt_bench.config import resolve_config
from lt_bench.runner import RunPaths, load_data, run


def stand_in_weights(args: argparse.Namespace, folder: Path) -> Path:
    """A weights file of the backbone's own random initialisation, for the dataset's channels."""
    channels = load_data(resolve_config(args.method, args.dataset)).in_chans
    torch.manual_seed(0)
    path = folder / "weights.pth"
    torch.save(create_backbone(args.backbone, channels).state_dict(), path)
    return path


def epoch_seconds(mode: str, args: argparse.Namespace, output: Path, weights: Path) -> tuple[float, float]:
    """The median training seconds per epoch of a `mode` run, and its wall time."""
    config = resolve_config(
        args.method,
        args.dataset,
        backbone=args.backbone,
        epochs=args.epochs,
        finetune=mode,
        pretrained_file=str(weights),
        output=str(output),
        device="cpu",
        val_every=0,
    )
    record = run(config)
    log = [json.loads(line) for line in RunPaths.of(config).log.read_text().splitlines()]
    return statistics.median(entry["seconds"] for entry in log), record["wall_time_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="ce")
    parser.add_argument("--dataset", default="digits_lt")
    parser.add_argument("--backbone", default="vit_tiny_patch16_224")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        weights = stand_in_weights(args, Path(folder))
        full, full_wall = epoch_seconds("full", args, Path(folder), weights)
        linear, linear_wall = epoch_seconds("linear", args, Path(folder), weights)
    print(f"{args.method} on {args.dataset}, {args.backbone}, {args.epochs} epochs, CPU")
    print(f"full:   {full:.4f} s/epoch, run {full_wall:.1f} s")
    print(f"linear: {linear:.4f} s/epoch, run {linear_wall:.1f} s (features cached once per run)")
    print(f"linear is {full / linear:.1f}x faster per epoch")


if __name__ == "__main__":
    main()
