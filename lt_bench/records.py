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

from lt_bench import record_arrays
from lt_bench.atomic import write_atomically, write_json
from lt_bench.bounded_read import RECORD_LIMIT, UnreadableInput, read_bytes, read_text
from lt_bench.record_schema import PER_IMAGE_FIELDS, check_record, has_per_image_fields, is_detection
from lt_bench.record_schema import SCHEMA as SCHEMA

RECORD_FIX = "rerun the run with --rerun to write it again, or move the file out of records/"


def records_dir(output: str | Path) -> Path:
    return Path(output) / "records"


def record_path(output: str | Path, run_id: str) -> Path:
    return records_dir(output) / f"{run_id}.json"


def write_record(output: str | Path, record: dict[str, Any]) -> Path:
    """Write `record` atomically; the file name is the run id, so a rerun replaces its own record.

    Its per-image and per-class arrays go first to `<run id>.npz` beside it (lt_bench.record_arrays),
    which the JSON names with its sha256.
    """
    path = record_path(output, record["run_id"])
    _write_record_file(path, record)
    return path


def _write_record_file(path: Path, record: dict[str, Any]) -> None:
    if record_arrays.has_arrays(record):
        record, arrays = record_arrays.split_off(record)
        data = record_arrays.encoded(arrays)
        sidecar = path.with_suffix(".npz")
        write_atomically(sidecar, lambda handle: handle.write(data))
        record = {**record, "arrays": {"file": sidecar.name, "sha256": record_arrays.digest(data)}}
    write_json(path, record)


def environment(precision: str) -> dict[str, Any]:
    """Git commit, package versions, CPU threads, training processes and the float precision: with
    the configuration and the device, what decides a run's numbers bit for bit (float sums are
    ordered differently with another number of threads or processes)."""
    import torch  # here, not at the top: the results commands read records without torch

    from lt_bench import distributed

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


def read_record(path: Path, *, arrays: bool = True) -> dict[str, Any]:
    """Read (bounded: a regular file of at most RECORD_LIMIT bytes) and check one record against the
    schema, with its arrays (lt_bench.record_arrays) unless `arrays` is False (the leaderboard and
    status need none); ValueError names what is wrong."""
    try:
        record = json.loads(read_text(path, limit=RECORD_LIMIT, fix=RECORD_FIX))
    except UnreadableInput as error:
        raise ValueError(error.problem) from error
    except json.JSONDecodeError as error:
        raise ValueError(f"not readable JSON ({error})") from error
    if arrays and isinstance(record, dict) and "arrays" in record:
        record = record_arrays.merged(record, _sidecar(path, record["arrays"]))
    check_record(record)
    return record


def _sidecar(path: Path, named: Any) -> dict[str, Any]:
    """The arrays of the `.npz` file a record names, checked against the sha256 it gives."""
    if not (isinstance(named, dict) and isinstance(named.get("file"), str) and "/" not in named["file"]):
        raise ValueError("its 'arrays' field does not name a file beside it")
    sidecar = record_arrays.arrays_path(path, named["file"])
    try:
        data = read_bytes(sidecar, limit=RECORD_LIMIT, fix="restore it or rerun the run with --rerun")
    except UnreadableInput as error:
        raise ValueError(f"its arrays file {sidecar.name}: {error.problem}") from error
    if record_arrays.digest(data) != named.get("sha256"):
        raise ValueError(f"its arrays file {sidecar} is not the one it was written with (sha256 differs); "
                         "restore it or rerun the run with --rerun")  # fmt: skip
    return record_arrays.decoded(data)


def iter_records(
    output: str | Path, *, finished_only: bool = True, per_image: bool = False, arrays: bool = True
) -> Iterator[dict[str, Any]]:
    """Every readable record under `<output>/records/` that keeps to the schema, once per run id,
    with its arrays unless `arrays` is False (the leaderboard needs none); with `per_image`, only
    finished records that hold their per-image predictions.

    Unreadable or invalid files, further copies of a run's record under other names, and (with
    `per_image`) records without per-image fields are named in a warning and skipped.
    """
    copies: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for path in sorted(records_dir(output).rglob("*.json")):
        try:
            record = read_record(path, arrays=arrays or per_image)
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
        if per_image and is_detection(record):
            continue  # AP per category, no per-image predictions
        if per_image and record["status"] == "finished" and not has_per_image_fields(record):
            warnings.warn(
                f"skipping {kept_path}: holds no per-image test predictions ({', '.join(PER_IMAGE_FIELDS)}), "
                f"as records of an older lt-bench; {RECORD_FIX}",
                stacklevel=2,
            )
        elif not finished_only or record["status"] == "finished":
            yield record


def compact_records(output: str | Path) -> int:
    """Rewrite every record under `<output>/records/` that holds its arrays inline in the compact
    layout (same content, arrays beside it); how many were rewritten. Rewriting is deterministic."""
    rewritten = 0
    for path in sorted(records_dir(output).rglob("*.json")):
        try:
            record = read_record(path)
        except ValueError as error:
            warnings.warn(f"skipping {path}: {error}", stacklevel=2)
            continue
        if "arrays" not in record and record_arrays.has_arrays(record):
            _write_record_file(path, record)
            rewritten += 1
    return rewritten


def _rank(entry: tuple[Path, dict[str, Any]]) -> tuple[bool, bool, str]:
    """Higher is kept: a finished record, then one under its own name, then the last written."""
    path, record = entry
    own_name = path.name == f"{record['run_id']}.json"
    return record["status"] == "finished", own_name, str(record.get("finished_at", ""))
