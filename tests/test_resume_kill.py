"""SIGKILL a real `lt-bench run` at 20 seeded random moments and rerun it: each resumed run ends with
a record (metrics, per-class accuracy, predictions, training log) and weights equal bit for bit to
those of an uninterrupted run.

The uninterrupted reference is the `lt-bench` console script. The killed runs are processes forked
from a server that has already imported lt-bench, each running `lt_bench.cli.main` — the console
script's entry point — so a kill costs the 2 s of a run rather than the 5 s of importing torch.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from lt_bench.checkpoint import read_checkpoint
from lt_bench.cli import main
from lt_bench.records import read_record

COMMAND = [
    "run", "--method", "causal_tde", "--dataset", "digits_lt", "--epochs", "3", "--batch-size", "8",
    "--checkpoint-every", "0.05", "--threads", "1",  # the same kernels in every process
]  # fmt: skip
EPOCHS = 3
KILLS = 20
PRELOAD = ["lt_bench.cli", "lt_bench.runner", "lt_bench.methods.causal_tde", "lt_bench.data.sources"]
RECORD_FIELDS = (
    "status", "run_id", "metrics", "per_class_accuracy", "calibration", "knobs", "test_predictions",
    "class_counts",
)  # fmt: skip


def _outcome(output: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, torch.Tensor]]:
    """The run's record (without times or machine details), its epoch log and its final weights."""
    (record_file,) = (output / "records").glob("*.json")
    record = read_record(record_file)
    (folder,) = (output / "runs").iterdir()
    log = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    for entry in log:
        entry.pop("seconds")
    weights = read_checkpoint(folder / "checkpoint.pt")["model"]
    return {field: record[field] for field in RECORD_FIELDS}, log, weights


def _phase(output: Path) -> str:
    """Where a killed run was, judged from what it left on disk."""
    if list((output / "records").glob("*.json")):
        return "after writing the record"
    checkpoints = list((output / "runs").glob("*/checkpoint.pt*"))
    if not checkpoints:
        return "before the first checkpoint"
    newest = max(checkpoints, key=lambda path: path.stat().st_mtime_ns)
    progress = read_checkpoint(newest)["progress"]
    if progress["epoch"] == EPOCHS:
        return "evaluating"
    return "mid-epoch" if progress["step"] else "at an epoch boundary"


def _start(context: Any, output: Path) -> Any:
    process = context.Process(target=main, args=([*COMMAND, "--output", str(output)],))
    process.start()
    return process


def _kill_after(process: Any, seconds: float) -> bool:
    """SIGKILL `process` `seconds` after its start; False when it had already finished."""
    time.sleep(seconds)
    if not process.is_alive():
        process.join()
        return False
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    return True


LT_BENCH = str(Path(sys.executable).parent / "lt-bench")
SINGLE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}  # no oversubscribed helper threads either


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, torch.Tensor]]:
    """The outcome of the `lt-bench` console script run without interruption."""
    output = tmp_path_factory.mktemp("reference")
    subprocess.run([LT_BENCH, *COMMAND, "--output", str(output)], check=True, timeout=300,
                   capture_output=True, env=SINGLE_THREAD)  # fmt: skip
    return _outcome(output)


def _assert_same(output: Path, reference: tuple, context_message: str) -> None:
    record, log, weights = _outcome(output)
    expected_record, expected_log, expected_weights = reference
    assert record == expected_record, context_message
    assert log == expected_log, context_message
    assert weights.keys() == expected_weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(tensor, expected_weights[name]), f"{context_message}: {name}"


def test_the_console_script_killed_mid_epoch_resumes_exactly(reference, tmp_path):
    command = [LT_BENCH, *COMMAND, "--output", str(tmp_path)]
    # Kill as soon as a mid-epoch checkpoint is on disk; an epoch-end checkpoint can slip in before
    # the signal lands, so try again (resuming the same run) until the kill leaves one mid-epoch.
    for _attempt in range(5):
        process = subprocess.Popen(command, env=SINGLE_THREAD, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 300
        while _phase(tmp_path) != "mid-epoch" and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL, "the run ended before it could be killed"
        if _phase(tmp_path) == "mid-epoch":
            break
    assert _phase(tmp_path) == "mid-epoch"
    subprocess.run(command, check=True, timeout=300, capture_output=True, env=SINGLE_THREAD)
    _assert_same(tmp_path, reference, "the console script killed mid-epoch")


def test_killed_runs_resume_to_exactly_the_uninterrupted_record(reference, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the fork server started below

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    warm_up = context.Process(target=int)  # starts the server: imports happen here, not in the timing
    warm_up.start()
    warm_up.join()
    started = time.perf_counter()
    uninterrupted = _start(context, tmp_path / "forked")
    uninterrupted.join(timeout=300)
    duration = time.perf_counter() - started
    _assert_same(tmp_path / "forked", reference, "the forked run without a kill")

    moments = random.Random(6)
    delays = [moments.uniform(0.02, duration) for _ in range(KILLS)]
    phases: Counter[str] = Counter()
    for index, delay in enumerate(delays):
        output = tmp_path / f"killed-{index}"
        if _kill_after(_start(context, output), delay):
            phases[_phase(output)] += 1
        if index % 2:  # every other run is killed a second time, while resuming
            if _kill_after(_start(context, output), delay / 2):
                phases[f"resuming, {_phase(output)}"] += 1
        finisher = _start(context, output)
        finisher.join(timeout=300)
        _assert_same(output, reference, f"kill {index} after {delay:.2f} s")
    print(f"\n{sum(phases.values())} kills over a {duration:.2f} s run: {dict(phases)}")
    assert phases["mid-epoch"] >= KILLS // 4, phases
