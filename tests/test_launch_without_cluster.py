"""Launch plumbing that needs no SLURM cluster: input checks before submission, the ledger of
submissions, and `lt-bench status` for local runs and on machines without squeue."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lt_bench.cli import main
from lt_bench.launch.slurm import ledger_path, read_ledger

SUBMIT = "--dataset digits_lt --epochs 1 --launcher slurm --cluster local --output".split()


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("run --method cee", "unknown method 'cee'. Did you mean 'ce'"),
        ("run --method ce --backbone resnet33", "unknown backbone 'resnet33'. Did you mean 'resnet33ts'"),
        ("sweep --methods ce causal_tde --knob alpha=1", "method 'ce' has no test-time knob 'alpha'"),
        ("sweep --methods causal_tde --knob tau=1", "method 'causal_tde' has no test-time knob 'tau'"),
    ],
)
def test_bad_names_stop_a_submission_before_anything_reaches_the_queue(command, message, tmp_path, capsys):
    output = tmp_path / "results"
    assert main([*command.split(), *SUBMIT, str(output)]) == 2
    captured = capsys.readouterr()
    [line] = captured.err.splitlines()
    assert line.startswith("lt-bench: error: ") and message in line
    assert captured.out == ""
    assert not output.exists()  # no ledger, no logs, no run folder


def test_bad_names_stop_a_local_sweep_before_the_first_run(tmp_path, capsys):
    output = tmp_path / "results"
    argv = "sweep --methods ce causal_tde --dataset digits_lt --epochs 1 --knob alpha=1 --output"
    assert main([*argv.split(), str(output)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "method 'ce' has no test-time knob 'alpha' (its knobs: none)" in line
    assert not output.exists()  # causal_tde, which has alpha, did not run either


def _entry(job_id: str, run_id: str) -> str:
    return json.dumps({"job_id": job_id, "run_id": run_id, "epochs": 5, "log_folder": f"/logs/{job_id}"})


def test_a_torn_ledger_line_is_named_and_skipped_and_later_submissions_stay_readable(tmp_path):
    path = ledger_path(tmp_path)
    path.parent.mkdir(parents=True)
    first = _entry("11_0", "digits_lt-ce-a")
    torn = _entry("11_1", "digits_lt-ce-b")[:30]  # the crash tore the write after 30 characters
    path.write_text(f"{first}\n[1, 2]\n{torn}")
    with pytest.warns(UserWarning) as caught:
        entries = read_ledger(tmp_path)
    assert [entry["job_id"] for entry in entries] == ["11_0"]
    messages = [str(warning.message) for warning in caught]
    assert len(messages) == 2
    assert f"{path} line 2 is not a submission" in messages[0]
    assert f"{path} line 3 is not JSON" in messages[1] and "skipped" in messages[1]

    # The next submission appends after the torn line, not onto it.
    from lt_bench.config import resolve_config
    from lt_bench.launch.slurm import Submitted, _append_to_ledger

    config = resolve_config("ce", "digits_lt", epochs=1, output=str(tmp_path))
    _append_to_ledger(tmp_path, [Submitted("12_0", config, tmp_path / "logs" / "12_0")])
    with pytest.warns(UserWarning) as caught:
        entries = read_ledger(tmp_path)
    assert [entry["job_id"] for entry in entries] == ["11_0", "12_0"]
    assert len(caught) == 2 and "line 3 is not JSON" in str(caught[1].message)


def _lt_bench(*args: str) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "lt_bench.cli", *args], env=environment, stdout=subprocess.PIPE, text=True
    )


def _killed_after_one_epoch(output: Path) -> Path:
    """A real local run killed (SIGKILL) once its first epoch is logged; its run folder."""
    process = _lt_bench(*"run --method ce --dataset mnist_lt --epochs 200 --output".split(), str(output))
    deadline = time.monotonic() + 120
    while not list(output.glob("runs/*/log.jsonl")) or not list(output.glob("runs/*/checkpoint.pt")):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before its first epoch"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    [folder] = output.glob("runs/*")
    return folder


def test_status_lists_local_runs_and_survives_a_machine_without_squeue(tmp_path, capsys, monkeypatch):
    output = tmp_path / "results"
    killed = _killed_after_one_epoch(output)
    epochs_done = len((killed / "log.jsonl").read_text().splitlines())
    run = "run --method ce --dataset digits_lt --epochs 1 --output"
    assert main([*run.split(), str(output)]) == 0
    assert main([*run.split(), str(output), "--lr", "1e30"]) == 2  # the loss becomes NaN: a failed record
    path = ledger_path(output)
    path.parent.mkdir(parents=True)
    path.write_text(_entry("77_0", "digits_lt-ce-submitted") + '\n{"job_id": "78_')
    capsys.readouterr()

    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))  # no squeue, no sacct
    assert main(["status", "--output", str(output)]) == 0
    captured = capsys.readouterr()
    lines = {line.split()[1]: line for line in captured.out.splitlines()[1:-1]}
    assert lines["digits_lt-ce-submitted"].split()[:3] == ["77_0", "digits_lt-ce-submitted", "unknown"]
    assert (
        "SLURM state unknown (squeue not found on this machine); epoch 0/5" in lines["digits_lt-ce-submitted"]
    )
    assert lines[killed.name].split()[:5] == [
        "local",
        killed.name,
        "incomplete",
        "epoch",
        f"{epochs_done}/200,",
    ]
    assert "checkpoint kept (still running, or rerun the same command to resume" in lines[killed.name]
    states = sorted(line.split()[2] for line in lines.values())
    assert states == ["failed", "finished", "incomplete", "unknown"]
    assert "loss became nan" in next(line for line in lines.values() if " failed " in line)
    assert (
        captured.out.splitlines()[-1] == "0 queued, 0 running, 1 finished, 1 failed, 1 unknown, 1 incomplete"
    )
    assert f"lt-bench: warning: {path} line 2 is not JSON" in captured.err


def test_status_of_an_empty_results_tree_is_one_line(tmp_path, capsys):
    assert main(["status", "--output", str(tmp_path)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "no runs in" in line and "lt-bench run or sweep" in line
