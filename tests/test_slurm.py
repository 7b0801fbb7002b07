"""Real jobs on a real SLURM cluster (`.ci/start-slurm.sh` starts a one-node one), through submitit.

Skipped only when no SLURM is reachable (`sinfo` fails); with CI=true that is a failure instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from lt_bench.cli import main
from lt_bench.config import resolve_config
from lt_bench.errors import UserError
from lt_bench.launch.profiles import load_profile
from lt_bench.launch.slurm import launch
from lt_bench.launch.status import run_statuses
from lt_bench.records import read_record
from lt_bench.runner import RunPaths

WAIT_SECONDS = 240


@pytest.fixture(scope="module")
def slurm() -> None:
    try:
        subprocess.run(["sinfo", "--noheader"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        reason = f"no SLURM cluster is reachable (sinfo: {error}); start one with .ci/start-slurm.sh as root"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def _wait_until_settled(output: Path, expected: int) -> list:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        statuses = run_statuses(output)
        if len(statuses) == expected and all(s.state in ("finished", "failed") for s in statuses):
            return statuses
        time.sleep(1)
    raise AssertionError(f"jobs not done after {WAIT_SECONDS} s: {run_statuses(output)}")


def test_a_sweep_is_one_job_array_whose_records_reach_the_leaderboard(slurm, tmp_path, capsys) -> None:
    output = tmp_path / "results"
    assert (
        main(
            [
                *"sweep --methods ce causal_tde --dataset digits_lt --seeds 0 1 --epochs 2 --output".split(),
                str(output),
                *"--launcher slurm --cluster local".split(),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    job_ids = re.findall(r"^(\d+_\d+)  digits_lt-", printed, flags=re.MULTILINE)
    assert len(job_ids) == 4
    assert len({job_id.split("_")[0] for job_id in job_ids}) == 1  # one array
    assert sorted(int(job_id.split("_")[1]) for job_id in job_ids) == [0, 1, 2, 3]

    statuses = _wait_until_settled(output, 4)
    assert [s.state for s in statuses] == ["finished"] * 4, statuses
    records = [read_record(p) for p in sorted((output / "records").glob("*.json"))]
    assert sorted((r["method"], r["seed"]) for r in records) == [
        ("causal_tde", 0),
        ("causal_tde", 1),
        ("ce", 0),
        ("ce", 1),
    ]
    assert {r["config"]["output"] for r in records} == {str(output.resolve())}

    assert main(["status", "--output", str(output)]) == 0
    assert "0 queued, 0 running, 4 finished, 0 failed" in capsys.readouterr().out
    assert main(["leaderboard", "--output", str(output)]) == 0
    board = capsys.readouterr().out
    assert "from 4 run records" in board
    for method in ("ce", "causal_tde"):  # one row per method, two seeds behind it
        assert re.search(rf"^\| {method} +\|.*\| 2 +\|$", board, flags=re.MULTILINE), board


def _job_info(job_id: str) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout


def _epochs_done(config) -> int:
    log = RunPaths.of(config).log
    return len(log.read_text().splitlines()) if log.exists() else 0


def _interrupt(job_id: str, config, after_epochs: int, commands: list[list[str]], deadline: float) -> int:
    """Once `config` has trained `after_epochs` epochs, run `commands` against its running job; once
    the job is pending again, release it. The epochs done when the interrupted process was gone."""
    while _epochs_done(config) < after_epochs:
        assert time.monotonic() < deadline, f"the job never reached epoch {after_epochs}"
        time.sleep(0.2)
    for command in commands:
        subprocess.run(command, check=True)
    while "JobState=PENDING" not in _job_info(job_id):
        assert time.monotonic() < deadline, _job_info(job_id)
        time.sleep(0.5)
    # SLURM holds a requeued job for a while (BeginTime); release it now instead of waiting.
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True)
    return _epochs_done(config)  # (the process trains on until SLURM's KillWait when it ignores SIGTERM)


def test_a_requeued_and_a_preempted_job_resume_and_match_an_uninterrupted_run(slurm, tmp_path) -> None:
    # Long enough to outlast two restarts and SLURM's KillWait (the process ignores SIGTERM meanwhile).
    epochs = 30
    interrupted = resolve_config(
        "causal_tde", "digits_lt", epochs=epochs, batch_size=8, output=str(tmp_path / "requeued")
    )
    reference = interrupted.replace(output=str(tmp_path / "uninterrupted"))
    jobs = [
        launch([c], cluster="local", overrides={}, rerun=False, precision_given=False)[0]
        for c in (interrupted, reference)
    ]
    job_id = jobs[0].job_id
    deadline = time.monotonic() + WAIT_SECONDS

    # An administrator's requeue: SLURM kills the job and starts its script again.
    at_requeue = _interrupt(job_id, interrupted, 1, [["scontrol", "requeue", job_id]], deadline)
    # A preemption: SIGTERM, then submitit's warning signal; its handler calls RunJob.checkpoint,
    # which requeues the job itself.
    preempt = [["scancel", "--signal=TERM", job_id], ["scancel", "--signal=USR2", job_id]]
    at_preemption = _interrupt(job_id, interrupted, at_requeue + 1, preempt, deadline)
    assert at_preemption < epochs, "the job finished before it was preempted; raise `epochs`"

    statuses = _wait_until_settled(tmp_path / "requeued", 1)
    assert statuses[0].state == "finished", statuses
    assert "Restarts=2" in _job_info(job_id)
    # Each start of the job says where it began (SLURM appends a requeued job's output to its log):
    # from scratch, then from the checkpoints the interruptions left.
    log = Path(jobs[0].log_folder, f"{job_id}_0_log.out").read_text()
    starts = re.findall(r"^(starting|resuming) \S+(?: at epoch (\d+))?", log, flags=re.MULTILINE)
    assert [kind for kind, _ in starts] == ["starting", "resuming", "resuming"], log
    resumed_at = [int(epoch) for _, epoch in starts[1:]]
    assert at_requeue <= resumed_at[0] < at_preemption <= resumed_at[1] < epochs

    _wait_until_settled(tmp_path / "uninterrupted", 1)
    first, second = (read_record(RunPaths.of(c).record) for c in (interrupted, reference))
    for key in ("metrics", "per_class_accuracy", "knobs", "test_predictions", "calibration"):
        assert first[key] == second[key], key
    assert first["run_id"] == second["run_id"]
    print(
        f"job {job_id}: requeued at epoch {at_requeue}, preempted at {at_preemption}, resumed at "
        f"{resumed_at}; test top1 {first['metrics']['test']['top1']} both ways"
    )


def test_a_two_task_job_trains_with_ddp_like_torchrun(slurm, tmp_path, torchrun) -> None:
    on_slurm = resolve_config("ce", "digits_lt", epochs=2, output=str(tmp_path / "slurm"))
    with_torchrun = on_slurm.replace(output=str(tmp_path / "torchrun"))
    overrides = {"processes_per_node": 2}
    job = launch([on_slurm], cluster="local", overrides=overrides, rerun=False, precision_given=False)[0]
    finished = torchrun(2, *"run --method ce --dataset digits_lt --epochs 2 --output".split(),
                        with_torchrun.output, timeout=WAIT_SECONDS)  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]

    assert [s.state for s in _wait_until_settled(tmp_path / "slurm", 1)] == ["finished"]
    for rank in (0, 1):  # two SLURM tasks, each a DDP process from submitit's job environment
        assert "starting digits_lt-ce" in Path(job.log_folder, f"{job.job_id}_{rank}_log.out").read_text()
    records = [read_record(RunPaths.of(c).record) for c in (on_slurm, with_torchrun)]
    assert records[0]["metrics"] == records[1]["metrics"]
    assert records[0]["test_predictions"] == records[1]["test_predictions"]
    assert len(RunPaths.of(on_slurm).log.read_text().splitlines()) == 2


def test_status_reports_a_job_that_failed_with_its_error(slurm, tmp_path, capsys) -> None:
    # Only the job, once it has loaded the data, can find the batch too large for it.
    output = tmp_path / "results"
    assert (
        main(
            [
                *"run --method ce --dataset digits_lt --epochs 1 --batch-size 5000 --lr 0.1 --output".split(),
                str(output),
                *"--launcher slurm --cluster local".split(),
            ]
        )
        == 0
    )
    capsys.readouterr()
    [status] = _wait_until_settled(output, 1)
    assert status.state == "failed"
    assert "--batch-size 5000 is larger than the" in status.detail
    assert main(["status", "--output", str(output)]) == 0
    assert "0 queued, 0 running, 0 finished, 1 failed" in capsys.readouterr().out


def _in_queue(job_id: str) -> bool:
    listing = subprocess.run(
        ["squeue", "--array", "--noheader", "--format=%i"], capture_output=True, text=True
    )
    return job_id in listing.stdout.split()


def test_a_run_in_the_queue_is_not_submitted_twice_and_a_cancelled_one_resumes(slurm, tmp_path, capsys):
    output = tmp_path / "results"
    # mnist_lt: about a second an epoch, so the job is still training when the cancel reaches it.
    argv = [*"run --method ce --dataset mnist_lt --epochs 40 --output".split(), str(output),
            *"--launcher slurm --cluster local".split()]  # fmt: skip
    assert main(argv) == 0
    [job_id] = re.findall(r"^(\d+(?:_\d+)?)  mnist_lt-", capsys.readouterr().out, flags=re.MULTILINE)
    config = resolve_config("ce", "mnist_lt", epochs=40, output=str(output.resolve()))

    assert main(argv) == 0  # while the job is queued or running, the same command submits nothing
    [line] = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"{config.run_id}: already (queued|running) as SLURM job {job_id}; not submitted "
                        r"\(--force submits again\)", line)  # fmt: skip
    assert len((output / "slurm" / "jobs.jsonl").read_text().splitlines()) == 1

    deadline = time.monotonic() + WAIT_SECONDS
    while _epochs_done(config) < 1 or not RunPaths.of(config).checkpoint.exists():
        assert time.monotonic() < deadline, "the job never finished an epoch"
        time.sleep(0.2)
    subprocess.run(["scancel", job_id], check=True)
    while _in_queue(job_id):
        assert time.monotonic() < deadline, "the cancelled job stayed in the queue"
        time.sleep(0.5)
    [status] = run_statuses(output)
    assert status.state == "cancelled", status
    assert re.fullmatch(
        r"cancelled at epoch \d+/40; rerun the same command to resume from its checkpoint", status.detail
    )

    assert main(argv) == 0  # rerunning submits it again, and the new job resumes from the checkpoint
    [resumed_job] = re.findall(r"^(\d+(?:_\d+)?)  mnist_lt-", capsys.readouterr().out, flags=re.MULTILINE)
    assert resumed_job != job_id
    log = output / "slurm" / "logs" / resumed_job / f"{resumed_job}_0_log.out"
    while not (log.exists() and "resuming " in log.read_text()):
        assert time.monotonic() < deadline, "the resubmitted job did not start"
        time.sleep(0.5)
    subprocess.run(["scancel", resumed_job], check=True)
    assert re.search(rf"^resuming {config.run_id} at epoch [1-9]", log.read_text(), flags=re.MULTILINE)


def test_an_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(UserError, match=r"no cluster profile 'nowhere'.*known profiles: .*local"):
        load_profile("nowhere")


def test_profile_dataset_tables_and_flags_override_defaults() -> None:
    profile = load_profile("example")
    assert profile.resources("cifar10_lt", {}).gpus_per_node == 1
    node = profile.resources("imagenet_lt", {"time_min": 60, "partition": None})
    assert (node.gpus_per_node, node.tasks_per_node, node.time_min, node.partition) == (8, 8, 60, "gpu")
    parameters = node.submitit_parameters()
    assert parameters["slurm_setup"][0] == "module load cuda/12.1"
    assert parameters["slurm_account"] == "my-lab" and parameters["gpus_per_node"] == 8


def test_tune_with_two_slurm_jobs_trains_two_trials_at_once_in_one_study(slurm, tmp_path) -> None:
    import optuna
    from test_tuning import _trials

    output = tmp_path / "results"
    command = "tune --methods ce --dataset mnist_lt --trials 4 --epochs 3 --jobs 2 --pruner none"
    assert main([*command.split(), "--output", str(output), *"--launcher slurm --cluster local".split()]) == 0
    finished = [t for t in _trials(output, "ce") if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 4
    assert len({t.user_attrs["owner"]["pid"] for t in finished}) == 2  # both jobs trained trials
    overlapping = [
        (a.number, b.number)
        for a in finished
        for b in finished
        if a.user_attrs["owner"] != b.user_attrs["owner"]
        and a.datetime_start < b.datetime_complete
        and b.datetime_start < a.datetime_complete
    ]
    assert overlapping, "no two trials of the two jobs ran at the same time"
