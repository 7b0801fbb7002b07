"""A scale rehearsal: ImageNet-LT- and iNaturalist-2018-shaped data through every stage of lt-bench.

Users run 1,000 and 8,142 classes with 20k–50k test images and hundreds of records. This builds, in
memory, datasets with exactly those class counts and split sizes (generated 3×8×8 pixels; an
exponential long-tail profile rescaled to the published number of training images) and times, each
stage in a fresh process so its wall time, CPU time and peak memory are its own:

- `train`: one epoch of causal TDE with a tiny CNN, the full evaluation (α searched on validation)
  and the record (its JSON size is printed);
- `evaluate`: the same weights evaluated again with α fixed (`--knob alpha=1.5`, no training): the
  feature extraction and the metrics of the validation and test splits;
- `leaderboard`: `lt-bench leaderboard` over `--records` ImageNet-LT-size records;
- `test-shift`, `export`, `report`: `lt-bench leaderboard --test-shift`, `lt-bench export` and
  `lt-bench report` over `--shift-records` iNaturalist-size records.

    python benchmarks/scale.py                      # full size (minutes)
    python benchmarks/scale.py --fraction 0.01      # the same stages on 1 % of every size (CI)

Published sizes: ImageNet-LT (Liu et al., CVPR 2019): 1,000 classes, 115,846 training images
(1,280 to 5 per class), 20,000 validation and 50,000 test images. iNaturalist 2018: 8,142 classes,
437,513 training images, 24,426 validation images that are also its test split.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METHODS_FOR_COPIES = ("ce", "causal_tde", "focal", "class_balanced", "ldam_drw", "balanced_softmax")


@dataclass(frozen=True)
class Shape:
    """Class count and split sizes of a published long-tailed dataset."""

    name: str
    num_classes: int
    train: int
    max_count: int
    min_count: int
    val_per_class: int
    test_per_class: int | None  # None: the validation split is the test split (iNaturalist)

    def scaled(self, fraction: float) -> Shape:
        classes = max(10, round(self.num_classes * fraction))
        return Shape(
            self.name,
            classes,
            max(classes * self.min_count, round(self.train * fraction)),
            self.max_count,
            self.min_count,
            self.val_per_class,
            self.test_per_class,
        )


SHAPES = {
    "imagenet_lt": Shape("imagenet_lt", 1000, 115_846, 1280, 5, 20, 50),
    "inat2018": Shape("inat2018", 8142, 437_513, 1000, 2, 3, None),
}


def training_counts(shape: Shape) -> list[int]:
    """The exponential profile from max_count to min_count, rescaled to exactly `shape.train` images."""
    from lt_bench.data.profile import long_tailed_counts

    profile = long_tailed_counts(shape.max_count, shape.num_classes, shape.max_count / shape.min_count)
    total = sum(profile)
    counts = [max(shape.min_count, int(count * shape.train / total)) for count in profile]
    for index in range(shape.train - sum(counts)):  # what truncation left over goes to the head
        counts[index % shape.num_classes] += 1
    return counts


def register_dataset(shape: Shape) -> str:
    """Register `scale_<shape>` (generated pixels in memory) with lt-bench's datasets; its name."""
    import torch

    from lt_bench.data.base import (
        DATASETS,
        DataOptions,
        DatasetSource,
        LongTailedData,
        Recipe,
        TensorSplit,
    )

    name = f"scale_{shape.name}"

    def split(counts: list[int], generator: torch.Generator) -> TensorSplit:
        labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
        images = torch.randint(0, 256, (len(labels), 3, 8, 8), dtype=torch.uint8, generator=generator)
        return TensorSplit(images, labels, (0.5, 0.5, 0.5), (0.29, 0.29, 0.29))

    class Generated(DatasetSource):
        takes_data_root = False
        description = f"{shape.name}-shaped generated pixels (benchmarks/scale.py)"
        batch = min(256, shape.train // 4)  # at 1 % of a size, still a few steps
        recipe = Recipe(backbone="lt_small_cnn", epochs=1, batch_size=batch, lr=0.1, weight_decay=5e-4)
        default_imbalance_ratio = None

        def read(self, options: DataOptions) -> LongTailedData:
            generator = torch.Generator().manual_seed(options.data_seed)
            counts = training_counts(shape)
            val = split([shape.val_per_class] * shape.num_classes, generator)
            test = val
            if shape.test_per_class is not None:
                test = split([shape.test_per_class] * shape.num_classes, generator)
            return LongTailedData(
                name=name,
                num_classes=shape.num_classes,
                train=split(counts, generator),
                val=val,
                test=test,
                class_counts=counts,
                in_chans=3,
            )

    Generated.name = name
    DATASETS.register(name)(Generated)
    return name


def train_config(shape: Shape, output: Path, threads: int, **overrides: Any) -> Any:
    from lt_bench.config import resolve_config

    dataset = register_dataset(shape)
    return resolve_config("causal_tde", dataset, output=str(output), threads=threads, **overrides)


def run_stage(stage: str, shape: Shape, work: Path, threads: int) -> dict[str, Any]:
    """Do one stage in this process; what it measured beside time and memory."""
    from lt_bench.cli import main as cli

    records = work / "records-out"
    if stage == "train":
        from lt_bench.runner import run

        record = run(train_config(shape, work / "run", threads))
        path = next((work / "run" / "records").glob("*.json"))
        return {"record_kib": path.stat().st_size / 1024, "test_top1": record["metrics"]["test"]["top1"]}
    if stage == "evaluate":
        from lt_bench.runner import run

        run(train_config(shape, work / "run", threads, knobs={"alpha": 1.5}))
        return {}
    commands = {
        "leaderboard": ["leaderboard", "--output", str(records)],
        "test-shift": ["leaderboard", "--test-shift", "--output", str(records)],
        "export": ["export", "--output", str(records), "--to", str(work / "export.csv")],
        "report": ["report", "--dataset", f"scale_{shape.name}", "--output", str(records)],
    }
    code = cli(commands[stage])
    if code != 0:
        raise SystemExit(f"scale: `lt-bench {' '.join(commands[stage])}` exited {code}")
    return {"torch_imported": "torch" in sys.modules}


def copy_records(source: Path, output: Path, count: int) -> None:
    """`count` records like the trained one under `output`, each another (method, seed), each with
    its own arrays file."""
    from lt_bench.config import RunConfig
    from lt_bench.records import read_record, write_record

    record = read_record(next((source / "records").glob("*.json")))  # its arrays merged in
    record.pop("arrays", None)
    for index in range(count):
        method = METHODS_FOR_COPIES[index % len(METHODS_FOR_COPIES)]
        seed = index // len(METHODS_FOR_COPIES)
        config = RunConfig.from_json(record["config"]).replace(method=method, seed=seed, output=str(output))
        write_record(output, {**record, "config": config.to_json(), "method": method, "seed": seed,
                              "run_id": config.run_id})  # fmt: skip


def measured(stage: str, shape: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run `stage` in a child process; its wall time, CPU time, peak memory and findings."""
    command = [sys.executable, __file__, "--stage", stage, "--shape", shape, "--work", str(work)]
    command += ["--fraction", str(args.fraction), "--threads", str(args.threads)]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"scale: stage {stage} on {shape} failed:\n{finished.stderr[-3000:]}")
    if "skipping" in finished.stderr:  # every copied record must count
        raise SystemExit(f"scale: stage {stage} on {shape} skipped records:\n{finished.stderr[-3000:]}")
    child = json.loads(finished.stdout.strip().splitlines()[-1])
    return {"stage": stage, "shape": shape, "wall_s": wall, **child}


def child(args: argparse.Namespace) -> None:
    """One stage in this process; prints one JSON line of what it measured."""
    shape = SHAPES[args.shape].scaled(args.fraction)
    found = run_stage(args.stage, shape, args.work, args.threads)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {"cpu_s": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024, **found}
    print(json.dumps(result))


def rehearsal(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for shape, copies, stages in (
            ("imagenet_lt", args.records, ("train", "evaluate", "leaderboard")),
            ("inat2018", args.shift_records, ("train", "evaluate", "test-shift", "export", "report")),
        ):
            if shape not in args.shapes:
                continue
            work = Path(folder) / shape
            for stage in stages:
                if stage not in ("train", "evaluate") and not (work / "records-out").exists():
                    copy_records(work / "run", work / "records-out", copies)
                results.append(measured(stage, shape, work, args))
                print(line(results[-1], copies), flush=True)
    return results


def line(result: dict[str, Any], copies: int) -> str:
    over = f" over {copies} records" if result["stage"] not in ("train", "evaluate") else ""
    extra = ""
    if "record_kib" in result:
        extra = f", record {result['record_kib']:.0f} KiB, test top-1 {result['test_top1']:.3f}"
    if "torch_imported" in result:
        extra = f", torch imported: {'yes' if result['torch_imported'] else 'no'}"
    return (
        f"{result['shape']:<12} {result['stage']:<11} wall {result['wall_s']:7.1f} s  "
        f"CPU {result['cpu_s']:7.1f} s  peak {result['peak_mib']:7.0f} MiB{over}{extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=1.0, help="scale every size (CI: 0.01)")
    parser.add_argument("--records", type=int, default=1000, help="ImageNet-LT-size records to tabulate")
    parser.add_argument("--shift-records", type=int, default=100, help="iNaturalist-size records to tabulate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=sorted(SHAPES))
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        child(args)
        return
    results = rehearsal(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
