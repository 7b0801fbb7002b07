"""Run records: one JSON file per run under `<output>/records/`, the source of every table."""

from __future__ import annotations

import json
import math
import platform
import subprocess
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from lt_bench import distributed
from lt_bench.atomic import write_json

SCHEMA = "lt-bench/record/1"
REQUIRED_FIELDS = ("schema", "status", "run_id", "method", "dataset", "backbone", "seed", "config", "metrics")


def records_dir(output: str | Path) -> Path:
    return Path(output) / "records"


def record_path(output: str | Path, run_id: str) -> Path:
    return records_dir(output) / f"{run_id}.json"


def write_record(output: str | Path, record: dict[str, Any]) -> Path:
    """Write `record` atomically; the file name is the run id, so a rerun replaces its own record."""
    path = record_path(output, record["run_id"])
    write_json(path, record)
    return path


def environment(precision: str) -> dict[str, Any]:
    """Git commit, package versions, CPU threads, training processes and the float precision: with
    the configuration and the device, what decides a run's numbers bit for bit (float sums are
    ordered differently with another number of threads or processes)."""
    versions = {"python": platform.python_version()}
    for package in ("lt-bench", "torch", "torchvision", "timm", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "git_commit": git_commit(),
        "versions": versions,
        "torch_threads": torch.get_num_threads(),
        "world_size": distributed.world_size(),
        "precision": precision,
    }


def git_commit() -> str | None:
    """The commit of the lt-bench checkout in use, with '+dirty' for uncommitted changes; None outside git."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_record(path: Path) -> dict[str, Any]:
    """Parse and check one record; ValueError names what is wrong."""
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not readable JSON ({error})") from error
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise ValueError(f"not an lt-bench record (expected schema {SCHEMA!r})")
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        raise ValueError(f"record lacks {', '.join(missing)}")
    wrong = _wrongly_typed(record)
    if wrong:
        raise ValueError(f"record has malformed {', '.join(wrong)}")
    non_finite = _non_finite_test_metrics(record)
    if non_finite:
        raise ValueError(f"finished record has non-finite test metrics ({', '.join(non_finite)})")
    return record


def _wrongly_typed(record: dict[str, Any]) -> list[str]:
    """The fields a leaderboard reads that do not have the type it needs."""
    checks = {
        "status": record["status"] in ("finished", "failed", "pruned"),  # pruned: a stopped tuning trial
        **{name: isinstance(record[name], str) for name in ("run_id", "method", "dataset", "backbone")},
        "seed": isinstance(record["seed"], int),
        "config": isinstance(record["config"], dict) and isinstance(record["config"].get("epochs"), int),
        "metrics": isinstance(record["metrics"], dict),
    }
    if record["status"] == "finished" and checks["metrics"]:
        test = record["metrics"].get("test")
        checks["metrics.test"] = isinstance(test, dict) and all(
            value is None or isinstance(value, (int, float)) for value in test.values()
        )
    return [name for name, ok in checks.items() if not ok]


def _non_finite_test_metrics(record: dict[str, Any]) -> list[str]:
    """'top1=nan' for each NaN or infinite test metric of a finished record (JSON readers accept them)."""
    if record["status"] != "finished":
        return []
    test = record["metrics"]["test"]
    return [
        f"{name}={value}"
        for name, value in sorted(test.items())
        if value is not None and not math.isfinite(value)
    ]


def iter_records(output: str | Path, *, finished_only: bool = True) -> Iterator[dict[str, Any]]:
    """Every readable record under `<output>/records/`, once per run id.

    Unreadable files, and further copies of a run's record under other names, are named in a
    warning and skipped.
    """
    copies: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for path in sorted(records_dir(output).rglob("*.json")):
        try:
            record = read_record(path)
        except ValueError as error:
            warnings.warn(f"skipping {path}: {error}", stacklevel=2)
            continue
        copies.setdefault(record["run_id"], []).append((path, record))
    for run_id, entries in copies.items():
        kept_path, record = max(entries, key=_rank)
        for path, _ in entries:
            if path != kept_path:
                warnings.warn(f"skipping {path}: another record of run {run_id} (kept {kept_path})",
                              stacklevel=2)  # fmt: skip
        if not finished_only or record["status"] == "finished":
            yield record


def _rank(entry: tuple[Path, dict[str, Any]]) -> tuple[bool, bool, str]:
    """Higher is kept: a finished record, then one under its own name, then the last written."""
    path, record = entry
    own_name = path.name == f"{record['run_id']}.json"
    return record["status"] == "finished", own_name, str(record.get("finished_at", ""))
