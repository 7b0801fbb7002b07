"""Runs on SLURM through submitit: a sweep is one job array; a preempted or timed-out job requeues
itself and resumes from the newest checkpoint in its run folder.

Logs go to `<output>/slurm/logs/<job id>/`; every submitted run is one line of
`<output>/slurm/jobs.jsonl`, which `lt-bench status` reads.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

from lt_bench.config import RunConfig
from lt_bench.errors import UserError
from lt_bench.launch.profiles import Resources, load_profile
from lt_bench.precision import auto_precision
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
) -> list[Submitted]:
    """Submit the runs not yet finished, print their job ids and where logs and records go."""
    from lt_bench.runner import RunPaths, finished_record

    profile = load_profile(cluster)
    pending = []
    for config in configs:
        resources = profile.resources(config.dataset, overrides)
        config = job_config(config, resources, precision_given)
        if finished_record(config) is not None and not rerun:
            record = RunPaths.of(config).record
            print(f"{config.run_id}: already finished, record {record} (--rerun trains again)")
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
    with path.open("a") as ledger:
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


def read_ledger(output: str | Path) -> list[dict[str, Any]]:
    """Every run submitted from this results tree, the newest submission of each run last."""
    path = ledger_path(output)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
