"""Run records as tables for notebooks: one row per run, and per-class accuracy as a long table."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from lt_bench.atomic import write_atomically
from lt_bench.errors import UserError
from lt_bench.selection import Record, configuration, select, value_text
from lt_bench.test_shift import MEAN, SHIFTS, shift_accuracies

FORMATS = ("csv", "parquet", "jsonl")
TEST_METRICS = ("top1", "top5", "many", "medium", "few", "balanced_accuracy", "macro_f1", "ece", "nll")
VAL_METRICS = ("top1", "balanced_accuracy")
CONFIG_FIELDS = (
    "protocol",
    "imbalance_ratio",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "select",
    "pretrained",
)
COST_FIELDS = (
    "trainable_parameters",
    "total_parameters",
    "flops_per_image",
    "images_seen",
    "device",
    "devices",
    "wall_time_s",
    "device_hours",
)


Getter = Callable[[Record], Any]  # reads a record completed with its "configuration" and "shift"


def _config(name: str) -> Getter:
    return lambda record: record["configuration"].get(name)


def _metric(split: str, name: str) -> Getter:
    return lambda record: record["metrics"].get(split, {}).get(name)


def _shift(name: str) -> Getter:
    return lambda record: record["shift"][name]


def _cost(name: str) -> Getter:
    return lambda record: (record.get("cost") or {}).get(name)


def _words(name: str) -> str:
    return name.replace("_", " ")


def configuration_id(record: Record) -> str:
    """A short digest of the record's configuration: the same for the seeds of a leaderboard row."""
    text = json.dumps(record["configuration"], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


# Every column of the runs table: what it holds (the README's column list) and how it is read.
RUN_COLUMNS: dict[str, tuple[str, Getter]] = {
    "run_id": ("the run: dataset, method, backbone, seed and a digest of its config", lambda r: r["run_id"]),
    "configuration": ("a digest shared by the seeds of one leaderboard row", configuration_id),
    "method": ("method name", lambda r: r["method"]),
    "dataset": ("dataset name", lambda r: r["dataset"]),
    "backbone": ("timm backbone name", lambda r: r["backbone"]),
    "seed": ("training seed", lambda r: r["seed"]),
    "data_seed": ("seed of the long-tailed subset", lambda r: r.get("data_seed", 0)),
    **{f"config_{name}": (f"the config's {_words(name)}", _config(name)) for name in CONFIG_FIELDS},
    "fixed_knobs": ("knobs fixed by --knob, as 'alpha=2'", lambda r: _text(r["config"].get("knobs"))),
    "chosen_knobs": ("knobs used on test (chosen on validation)", lambda r: _text(r["knobs"]["selected"])),
    "world_size": ("training processes", lambda r: r.get("world_size", 1)),
    "precision": ("training precision", lambda r: r.get("precision", "fp32")),
    **{f"test_{name}": (f"test {_words(name)}", _metric("test", name)) for name in TEST_METRICS},
    **{f"val_{name}": (f"validation {_words(name)}", _metric("val", name)) for name in VAL_METRICS},
    **{f"shift_{s.name}": (f"top-1 on the {s.name} test subsample", _shift(s.name)) for s in SHIFTS},
    f"shift_{MEAN}": ("mean of the eleven shift columns", _shift(MEAN)),
    **{f"cost_{name}": (f"cost: {_words(name)}", _cost(name)) for name in COST_FIELDS},
    "kept_epoch": ("the epoch whose weights were tested", lambda r: (r.get("kept_epoch") or {}).get("epoch")),
    "git_commit": ("the lt-bench commit the run ran on", lambda r: r.get("git_commit")),
    "finished_at": ("when the run finished (UTC, ISO 8601)", lambda r: r.get("finished_at")),
}  # fmt: skip
PER_CLASS_COLUMNS = {
    "run_id": "the run (joins the runs table)",
    "method": "method name",
    "dataset": "dataset name",
    "seed": "training seed",
    "data_seed": "seed of the long-tailed subset",
    "class_index": "class index",
    "train_count": "training images of the class",
    "shot_group": "many / medium / few by the training count",
    "test_accuracy": "test accuracy of the class (fraction; empty when it has no test image)",
}


def _text(knobs: dict[str, Any] | None) -> str:
    return "" if not knobs else value_text("knobs", knobs)


def run_rows(records: Iterable[Record]) -> pd.DataFrame:
    """One row per run that a leaderboard shows (the newest finished record per configuration and
    seed), with the columns of RUN_COLUMNS."""
    rows = []
    for record in select(records).records:
        completed = {**record, "configuration": configuration(record), "shift": shift_accuracies(record)}
        rows.append({name: read(completed) for name, (_, read) in RUN_COLUMNS.items()})
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


def per_class_rows(records: Iterable[Record]) -> pd.DataFrame:
    """Per-class test accuracy of the same runs, one row per run and class."""
    rows = []
    for record in select(records).records:
        group_of = {c: group for group, classes in record["shot_groups"].items() for c in classes}
        for class_index, accuracy in enumerate(record["per_class_accuracy"]):
            rows.append(
                {
                    "run_id": record["run_id"],
                    "method": record["method"],
                    "dataset": record["dataset"],
                    "seed": record["seed"],
                    "data_seed": record.get("data_seed", 0),
                    "class_index": class_index,
                    "train_count": record["class_counts"][class_index],
                    "shot_group": group_of.get(class_index),
                    "test_accuracy": accuracy,
                }
            )
    return pd.DataFrame(rows, columns=list(PER_CLASS_COLUMNS))


def per_class_path(path: Path) -> Path:
    """Where the per-class table goes next to the runs table: 'runs.csv' → 'runs-per-class.csv'."""
    return path.with_name(f"{path.stem}-per-class{path.suffix}")


def export(records: Iterable[Record], path: Path, file_format: str) -> tuple[Path, Path]:
    """Write the runs table to `path` and the per-class table next to it; return both paths."""
    if file_format == "parquet":
        try:
            import pyarrow  # noqa: F401  pandas writes parquet through it
        except ImportError:
            raise UserError(
                "--format parquet needs pyarrow: pip install pyarrow (or use --format csv)"
            ) from None
    records = list(records)
    written = []
    for frame, target in ((run_rows(records), path), (per_class_rows(records), per_class_path(path))):
        write_atomically(target, lambda handle, frame=frame: _write(frame, handle, file_format))
        written.append(target)
    return written[0], written[1]


def _write(frame: pd.DataFrame, handle: Any, file_format: str) -> None:
    if file_format == "csv":
        handle.write(frame.to_csv(index=False).encode())
    elif file_format == "jsonl":
        handle.write(frame.to_json(orient="records", lines=True).encode())
    else:
        frame.to_parquet(handle, index=False)
