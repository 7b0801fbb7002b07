"""`lt-bench status`: queued, running, finished or failed, for every run submitted from a results tree.

A run's record decides finished/failed; otherwise squeue says queued/running; a job gone from the
queue without a record failed (submitit's result file or sacct, when the cluster keeps accounting,
says why).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from lt_bench.errors import UserError
from lt_bench.launch.slurm import read_ledger
from lt_bench.records import read_record, record_path

QUEUED_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESIZING"}


@dataclass(frozen=True)
class RunStatus:
    job_id: str
    run_id: str
    state: str  # queued, running, finished or failed
    detail: str


def run_statuses(output: str | Path) -> list[RunStatus]:
    """The state of the newest submission of every run in `<output>/slurm/jobs.jsonl`."""
    newest = {entry["run_id"]: entry for entry in read_ledger(output)}
    if not newest:
        return []
    queue = queue_states()
    return [_status(entry, queue, output) for entry in newest.values()]


def queue_states() -> dict[str, str]:
    """SLURM's state of every job in the queue by id, array tasks one by one ('12_3')."""
    try:
        listing = subprocess.run(
            ["squeue", "--array", "--noheader", "--format=%i|%T"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except FileNotFoundError as error:
        raise UserError(
            "squeue not found: run `lt-bench status` on a machine of the SLURM cluster"
        ) from error
    except subprocess.CalledProcessError as error:
        raise UserError(
            f"squeue failed: {error.stderr.strip() or error}; is the SLURM controller up?"
        ) from error
    return dict(line.split("|", 1) for line in listing.splitlines() if "|" in line)


def _status(entry: dict[str, Any], queue: dict[str, str], output: str | Path) -> RunStatus:
    job_id, run_id = entry["job_id"], entry["run_id"]
    path = record_path(output, run_id)
    if path.exists():
        record = read_record(path)
        if record["status"] == "finished":
            return RunStatus(
                job_id, run_id, "finished", f"top1 {100 * record['metrics']['test']['top1']:.1f}"
            )
        return RunStatus(job_id, run_id, "failed", record.get("error", record["status"]))
    epochs_done = _epochs_done(Path(output) / "runs" / run_id / "log.jsonl")
    progress = f"epoch {epochs_done}/{entry['epochs']}"
    slurm_state = queue.get(job_id)
    if slurm_state in QUEUED_STATES:
        return RunStatus(
            job_id,
            run_id,
            "queued",
            slurm_state.lower() + (f", resumes at {progress}" if epochs_done else ""),
        )
    if slurm_state is not None:
        return RunStatus(job_id, run_id, "running", progress)
    job = submitit.SlurmJob(folder=entry["log_folder"], job_id=job_id)
    if job.paths.result_pickle.exists() and job.exception() is not None:
        return RunStatus(job_id, run_id, "failed", f"{_error_line(job.exception())} (log {job.paths.stderr})")
    return RunStatus(
        job_id,
        run_id,
        "failed",
        f"left the queue without a record at {progress} (sacct: {_sacct_state(job_id)}); "
        f"log {job.paths.stderr}",
    )


def _error_line(error: BaseException) -> str:
    """The exception line of the traceback submitit keeps between two dashed rules."""
    parts = str(error).split("-" * 22)
    traceback = parts[1] if len(parts) >= 3 else str(error)
    lines = [line.strip() for line in traceback.splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def _epochs_done(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


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
    counts = {
        state: sum(s.state == state for s in statuses)
        for state in ("queued", "running", "finished", "failed")
    }
    summary = ", ".join(f"{count} {state}" for state, count in counts.items())
    return tabulate(rows, headers=("job", "run", "state", "detail"), tablefmt="plain") + f"\n{summary}\n"
