"""Run records: one JSON file per run under `<output>/records/`, the source of every table."""

from __future__ import annotations

import json
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
from lt_bench.bounded_read import RECORD_LIMIT, UnreadableInput, read_text
from lt_bench.record_schema import PER_IMAGE_FIELDS, check_record, has_per_image_fields
from lt_bench.record_schema import SCHEMA as SCHEMA

RECORD_FIX = "rerun the run with --rerun to write it again, or move the file out of records/"


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
    """Read (bounded: a regular file of at most RECORD_LIMIT bytes) and check one record against the
    schema; ValueError names what is wrong."""
    try:
        record = json.loads(read_text(path, limit=RECORD_LIMIT, fix=RECORD_FIX))
    except UnreadableInput as error:
        raise ValueError(error.problem) from error
    except json.JSONDecodeError as error:
        raise ValueError(f"not readable JSON ({error})") from error
    check_record(record)
    return record


def iter_records(
    output: str | Path, *, finished_only: bool = True, per_image: bool = False
) -> Iterator[dict[str, Any]]:
    """Every readable record under `<output>/records/` that keeps to the schema, once per run id;
    with `per_image`, only finished records that hold their per-image predictions.

    Unreadable or invalid files, further copies of a run's record under other names, and (with
    `per_image`) records without per-image fields are named in a warning and skipped.
    """
    copies: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for path in sorted(records_dir(output).rglob("*.json")):
        try:
            record = read_record(path)
        except ValueError as error:
            warnings.warn(f"skipping {path}: {error}; {RECORD_FIX}", stacklevel=2)
            continue
        copies.setdefault(record["run_id"], []).append((path, record))
    for run_id, entries in copies.items():
        kept_path, record = max(entries, key=_rank)
        for path, _ in entries:
            if path != kept_path:
                warnings.warn(f"skipping {path}: another record of run {run_id} (kept {kept_path})",
                              stacklevel=2)  # fmt: skip
        if per_image and record["status"] == "finished" and not has_per_image_fields(record):
            warnings.warn(
                f"skipping {kept_path}: holds no per-image test predictions ({', '.join(PER_IMAGE_FIELDS)}), "
                f"as records of an older lt-bench; {RECORD_FIX}",
                stacklevel=2,
            )
        elif not finished_only or record["status"] == "finished":
            yield record


def _rank(entry: tuple[Path, dict[str, Any]]) -> tuple[bool, bool, str]:
    """Higher is kept: a finished record, then one under its own name, then the last written."""
    path, record = entry
    own_name = path.name == f"{record['run_id']}.json"
    return record["status"] == "finished", own_name, str(record.get("finished_at", ""))
