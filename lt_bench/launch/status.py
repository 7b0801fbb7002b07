"""`lt-bench status`: every run of a results tree, submitted to SLURM or started locally.

A run's record decides finished/failed. Otherwise, for a submitted run, squeue says queued/running;
a job gone from the queue without a record was cancelled (its log or sacct says so) or failed
(submitit's result file or sacct, when the cluster keeps accounting, says why). A local run without
a record is incomplete: its folder holds the epochs done and the checkpoint to resume from.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from lt_bench.bounded_read import TEXT_LIMIT, UnreadableInput, read_bytes
from lt_bench.errors import UserError
from lt_bench.launch.slurm import QUEUED_STATES, newest_submissions, queue_states
from lt_bench.records import RECORD_FIX, read_record, record_path

STATES = ("queued", "running", "finished", "failed")  # always counted; others when they occur
RESUME = "rerun the same command to resume from its checkpoint"
FOLDER_FIX = "the run writes it: rerun the same command with --rerun, or move the run folder away"


@dataclass(frozen=True)
class RunStatus:
    job_id: str  # the SLURM job, or "local"
    run_id: str
    state: str  # queued, running, finished, failed, cancelled, unknown (no squeue) or incomplete (local)
    detail: str


def run_statuses(output: str | Path) -> list[RunStatus]:
    """The newest SLURM submission of every run in `<output>/slurm/jobs.jsonl`, then every run folder
    in `<output>/runs/` that was not submitted."""
    newest = newest_submissions(output)
    statuses = []
    if newest:
        try:
            queue, unknown = queue_states(), None
        except UserError as error:  # reported on every submitted run's line
            queue, unknown = {}, str(error)
        statuses += [_submitted_status(entry, queue, unknown, output) for entry in newest.values()]
    runs = Path(output) / "runs"
    if runs.is_dir():
        folders = sorted(path for path in runs.iterdir() if path.is_dir() and path.name not in newest)
        statuses += [_local_status(folder, output) for folder in folders]
    return statuses


def _submitted_status(
    entry: dict[str, Any], queue: dict[str, str], unknown: str | None, output: str | Path
) -> RunStatus:
    job_id, run_id = entry["job_id"], entry["run_id"]
    recorded = _recorded(output, run_id)
    if recorded is not None:
        return RunStatus(job_id, run_id, *recorded)
    folder = Path(output) / "runs" / run_id
    done = _epochs_done(folder)
    progress = f"epoch {'?' if done is None else done}/{entry['epochs']}"
    if unknown is not None:
        return RunStatus(job_id, run_id, "unknown", f"SLURM state unknown ({unknown}); {progress}")
    slurm_state = queue.get(job_id)
    if slurm_state in QUEUED_STATES:
        resumes = f", resumes at {progress}" if done else ""
        return RunStatus(job_id, run_id, "queued", slurm_state.lower() + resumes)
    if slurm_state is not None:
        return RunStatus(job_id, run_id, "running", progress)
    job = submitit.SlurmJob(folder=entry["log_folder"], job_id=job_id)
    if job.paths.result_pickle.exists() and job.exception() is not None:
        return RunStatus(job_id, run_id, "failed", f"{_error_line(job.exception())} (log {job.paths.stderr})")
    sacct_state = _sacct_state(job_id)
    restart = RESUME if (folder / "checkpoint.pt").exists() else "rerun the same command to submit it again"
    if sacct_state.startswith("CANCELLED") or _cancelled_in_log(job.paths.stderr):
        return RunStatus(job_id, run_id, "cancelled", f"cancelled at {progress}; {restart}")
    return RunStatus(
        job_id,
        run_id,
        "failed",
        f"left the queue without a record at {progress} (sacct: {sacct_state}; log {job.paths.stderr}); "
        f"{restart}",
    )


def _local_status(folder: Path, output: str | Path) -> RunStatus:
    """A run started in a local process: its record, or the epochs its log holds and its checkpoint."""
    recorded = _recorded(output, folder.name)
    if recorded is not None:
        return RunStatus("local", folder.name, *recorded)
    epochs = _configured_epochs(folder / "config.json")
    done = _epochs_done(folder)
    progress = f"epoch {'?' if done is None else done}/{epochs}"
    if (folder / "checkpoint.pt").exists():
        return RunStatus(
            "local", folder.name, "incomplete", f"{progress}, checkpoint kept (still running, or {RESUME})"
        )
    return RunStatus("local", folder.name, "incomplete", f"{progress}, no checkpoint yet (still running?)")


def _recorded(output: str | Path, run_id: str) -> tuple[str, str] | None:
    """(state, detail) from the run's record; None without one (an unreadable one is named in a warning)."""
    path = record_path(output, run_id)
    if not path.exists():
        return None
    try:
        record = read_record(path, arrays=False)
    except ValueError as error:
        warnings.warn(f"{path}: {error}; status read from the run folder instead; {RECORD_FIX}", stacklevel=2)
        return None
    if record["status"] == "finished":
        return "finished", f"top1 {100 * record['metrics']['test']['top1']:.1f}"
    return "failed", record.get("error", record["status"])


def _error_line(error: BaseException) -> str:
    """The exception line of the traceback submitit keeps between two dashed rules."""
    parts = str(error).split("-" * 22)
    traceback = parts[1] if len(parts) >= 3 else str(error)
    lines = [line.strip() for line in traceback.splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _configured_epochs(path: Path) -> int | str:
    """The epochs of a run folder's config.json; '?' when it is absent, and also, named in a
    warning, when it is unreadable or malformed."""
    if not path.exists():
        return "?"
    try:
        epochs = json.loads(read_bytes(path, limit=TEXT_LIMIT, fix=FOLDER_FIX))["epochs"]
    except UnreadableInput as error:
        warnings.warn(str(error), stacklevel=2)
        return "?"
    except (ValueError, KeyError, TypeError):
        epochs = None
    if not isinstance(epochs, int) or isinstance(epochs, bool):
        warnings.warn(f"{path}: holds no epoch count; {FOLDER_FIX}", stacklevel=2)
        return "?"
    return epochs


def _epochs_done(folder: Path) -> int | None:
    """Lines of the run's log.jsonl, one per epoch done; None, named in a warning, when unreadable."""
    log = folder / "log.jsonl"
    if not log.exists():
        return 0
    try:
        return len(read_bytes(log, limit=TEXT_LIMIT, fix=FOLDER_FIX).splitlines())
    except UnreadableInput as error:
        warnings.warn(str(error), stacklevel=2)
        return None


def _cancelled_in_log(stderr: Path) -> bool:
    """True when slurmstepd wrote its '*** JOB … CANCELLED AT …' line into the job's stderr."""
    try:
        return any("CANCELLED AT" in line for line in stderr.read_text(errors="replace").splitlines())
    except OSError:
        return False


def _sacct_state(job_id: str) -> str:
    """The accounting state of a job, or 'unavailable' on clusters without accounting."""
    try:
        listing = subprocess.run(
            ["sacct", "--jobs", job_id, "--noheader", "--allocations", "--parsable2", "--format=State"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unavailable"
    states = listing.split()
    return states[-1] if states else "unavailable"


def status_table(statuses: list[RunStatus]) -> str:
    """A plain-text table and a count per state."""
    from tabulate import tabulate

    rows = [(s.job_id, s.run_id, s.state, s.detail) for s in statuses]
    seen = [s.state for s in statuses]
    states = [*STATES, *dict.fromkeys(state for state in seen if state not in STATES)]
    summary = ", ".join(f"{seen.count(state)} {state}" for state in states)
    return tabulate(rows, headers=("job", "run", "state", "detail"), tablefmt="plain") + f"\n{summary}\n"
