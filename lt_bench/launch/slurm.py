"""Runs on SLURM through submitit: a sweep is one job array; a preempted or timed-out job requeues
itself and resumes from the newest checkpoint in its run folder.

Logs go to `<output>/slurm/logs/<job id>/`; every submitted run is one line of
`<output>/slurm/jobs.jsonl`, which `lt-bench status` reads.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from lt_bench.bounded_read import TEXT_LIMIT, read_bytes
from lt_bench.config import RunConfig
from lt_bench.errors import UserError
from lt_bench.launch.profiles import Resources, load_profile
from lt_bench.records import now


def slurm_folder(output: str | Path) -> Path:
    return Path(output) / "slurm"


def ledger_path(output: str | Path) -> Path:
    return slurm_folder(output) / "jobs.jsonl"


class RunJob(submitit.helpers.Checkpointable):
    """The callable a SLURM job runs: one run, resumed from its checkpoint when there is one.

    On preemption or time-out submitit calls `checkpoint`, which (inherited) requeues this same
    callable with the same config; the requeued job's `run` resumes from `<run folder>/checkpoint.pt`.
    An external `scontrol requeue` restarts the job script, which reaches the same resume.
    """

    def __call__(self, config: RunConfig) -> str:
        from lt_bench.runner import finished_record, run

        if submitit.JobEnvironment().num_tasks > 1:  # one DDP process per task (per GPU)
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        if finished_record(config) is None:
            print(_starting_point(config), flush=True)
            run(config)
        return config.run_id


def _starting_point(config: RunConfig) -> str:
    """'starting RUN' or 'resuming RUN at epoch E, step S' from the newest checkpoint of its run folder."""
    from lt_bench.checkpoint import load_checkpoint
    from lt_bench.runner import RunPaths

    path = RunPaths.of(config).checkpoint
    state = load_checkpoint(path)
    if state is None:
        return f"starting {config.run_id}"
    progress = state["progress"]
    return f"resuming {config.run_id} at epoch {progress['epoch']}, step {progress['step']} from {path}"


def launch(
    configs: Sequence[RunConfig],
    *,
    cluster: str | None,
    overrides: dict[str, Any],
    rerun: bool,
    precision_given: bool,
    force: bool = False,
) -> list[Submitted]:
    """Submit the runs (of one results tree) neither finished nor already in the queue (`force`: those
    too); print their job ids and where logs and records go. Every run's input is checked first."""
    from lt_bench.runner import RunPaths, check_names, finished_record

    profile = load_profile(cluster)
    for config in configs:
        check_names(config)
    in_queue = {}
    if configs and not force:
        in_queue = jobs_in_queue(configs[0].output, [config.run_id for config in configs])
    pending = []
    for config in configs:
        resources = profile.resources(config.dataset, overrides)
        config = job_config(config, resources, precision_given)
        if finished_record(config) is not None and not rerun:
            record = RunPaths.of(config).record
            print(f"{config.run_id}: already finished, record {record} (--rerun trains again)")
            continue
        if config.run_id in in_queue:
            job_id, state = in_queue[config.run_id]
            print(
                f"{config.run_id}: already {state} as SLURM job {job_id}; "
                "not submitted (--force submits again)"
            )
            continue
        if rerun:
            RunPaths.of(config).discard()
        pending.append((config, resources))
    if not pending:
        return []
    output = pending[0][0].output
    submitted = submit(pending, output)
    for entry in submitted:
        print(f"{entry.job_id}  {entry.config.run_id}")
    print(
        f"submitted {len(submitted)} run(s) to SLURM (profile {profile.name}); "
        f"logs in {slurm_folder(output)}/logs/<job id>/, records in {output}/records/; "
        f"follow them with: lt-bench status --output {output}"
    )
    return submitted


def job_config(config: RunConfig, resources: Resources, precision_given: bool) -> RunConfig:
    """The config a job runs: absolute output, and `--precision auto` resolved for the job's node.

    Each job trains on its `--device` (by default `auto`: its GPUs when it has some). The nodes' GPUs
    are not visible from here, so `auto` takes them to be Ampere or newer: bf16 when the job has GPUs
    (a job on an older GPU stops with an error naming --precision fp16 or fp32), else fp32."""
    config = config.replace(output=str(Path(config.output).resolve()))
    if precision_given:
        return config
    from lt_bench.precision import auto_precision  # torch: `lt-bench status` imports this module

    on_gpu = resources.gpus_per_node > 0 and config.device.split(":")[0] in ("auto", "cuda")
    return config.replace(precision=auto_precision("cuda" if on_gpu else "cpu", native_bf16=True))


@dataclass(frozen=True)
class Submitted:
    """One run handed to SLURM."""

    job_id: str
    config: RunConfig
    log_folder: Path


def submit(pending: Sequence[tuple[RunConfig, Resources]], output: str | Path) -> list[Submitted]:
    """Submit every (config, resources) pair, one job array per distinct resources; log them in the ledger."""
    groups: dict[Resources, list[RunConfig]] = defaultdict(list)
    for config, resources in pending:
        groups[resources].append(config)
    logs = slurm_folder(output).resolve() / "logs"
    submitted = []
    for resources, configs in groups.items():
        executor = submitit.AutoExecutor(
            folder=logs / "%j", cluster="slurm", slurm_python=shlex.quote(sys.executable)
        )
        executor.update_parameters(**resources.submitit_parameters())
        try:
            jobs = executor.map_array(RunJob(), configs)
        except FileNotFoundError as error:
            raise UserError(
                f"cannot submit to SLURM ({error.filename} not found); run on a machine with "
                f"SLURM's sbatch, or pass --launcher local"
            ) from error
        except submitit.core.utils.FailedJobError as error:
            lines = [line for line in str(error).splitlines() if line.strip()] or ["no message"]
            raise UserError(
                f"sbatch refused the job: {lines[-1]}; check the cluster profile and flags"
            ) from error
        submitted += [
            Submitted(job.job_id, config, logs / job.job_id)
            for job, config in zip(jobs, configs, strict=True)
        ]
    _append_to_ledger(output, submitted)
    return submitted


def _append_to_ledger(output: str | Path, submitted: Sequence[Submitted]) -> None:
    path = ledger_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = _ends_mid_line(path)
    with path.open("a") as ledger:
        if torn:  # end the line a crash tore, so that the new entries stay readable
            ledger.write("\n")
        for entry in submitted:
            ledger.write(
                json.dumps(
                    {
                        "job_id": entry.job_id,
                        "run_id": entry.config.run_id,
                        "method": entry.config.method,
                        "dataset": entry.config.dataset,
                        "seed": entry.config.seed,
                        "epochs": entry.config.epochs,
                        "log_folder": str(entry.log_folder),
                        "submitted_at": now(),
                    }
                )
                + "\n"
            )


def _ends_mid_line(path: Path) -> bool:
    """True when the file's last line lacks its newline (a write torn by a crash)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


LEDGER_FIELDS = {"job_id": str, "run_id": str, "epochs": int, "log_folder": str}  # what status reads
LEDGER_FIX = "it is written by lt-bench launches: restore it, or move it away to forget those submissions"


def read_ledger(output: str | Path) -> list[dict[str, Any]]:
    """Every run submitted from this results tree, the newest submission of each run last; a line that
    is not a ledger entry (torn by a crash, edited) is named in a warning and skipped."""
    path = ledger_path(output)
    if not path.exists():
        return []
    entries = []
    text = read_bytes(path, limit=TEXT_LIMIT, fix=LEDGER_FIX).decode(errors="replace")
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            warnings.warn(f"{path} line {number} is not JSON ({error}); skipped", stacklevel=2)
            continue
        if not _is_submission(entry):
            needs = ", ".join(f"{key} ({kind.__name__})" for key, kind in LEDGER_FIELDS.items())
            warnings.warn(f"{path} line {number} is not a submission (needs {needs}); skipped", stacklevel=2)
            continue
        entries.append(entry)
    return entries


def _is_submission(entry: Any) -> bool:
    """A ledger entry with every field status reads, of its type (JSON's true is no epoch count)."""
    return isinstance(entry, dict) and all(
        isinstance(entry.get(key), kind) and not isinstance(entry.get(key), bool)
        for key, kind in LEDGER_FIELDS.items()
    )


def newest_submissions(output: str | Path) -> dict[str, dict[str, Any]]:
    """The newest ledger entry of each submitted run, by run id."""
    return {entry["run_id"]: entry for entry in read_ledger(output)}


QUEUED_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESIZING"}


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
        raise UserError("squeue not found on this machine") from error
    except subprocess.CalledProcessError as error:
        lines = (error.stderr or "").strip().splitlines() or [str(error)]
        raise UserError(f"squeue failed: {lines[-1]}") from error
    except subprocess.TimeoutExpired as error:
        raise UserError("squeue did not answer within 60 s") from error
    return dict(line.split("|", 1) for line in listing.splitlines() if "|" in line)


def jobs_in_queue(output: str | Path, run_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Run id → (job id, 'queued' or 'running') for those of `run_ids` whose newest submission from
    `output` is still in SLURM's queue."""
    newest = newest_submissions(output)
    submitted = [run_id for run_id in run_ids if run_id in newest]
    if not submitted:
        return {}
    try:
        queue = queue_states()
    except UserError as error:
        raise UserError(
            f"cannot read SLURM's queue ({error}); run on a machine of the SLURM cluster, "
            f"or pass --launcher local"
        ) from error
    found = {}
    for run_id in submitted:
        job_id = newest[run_id]["job_id"]
        if job_id in queue:
            found[run_id] = (job_id, "queued" if queue[job_id] in QUEUED_STATES else "running")
    return found
