"""NaN loss and out-of-memory mid-training: a one-line error naming the step, the last good checkpoint
kept, a `failed` record that no leaderboard shows — and, for OOM, an exact resume afterwards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from lt_bench.checkpoint import read_checkpoint
from lt_bench.cli import main
from lt_bench.records import iter_records, read_record

COMMAND = [
    "run", "--method", "causal_tde", "--dataset", "digits_lt", "--epochs", "2", "--batch-size", "16",
    "--checkpoint-every", "0",
]  # fmt: skip
OOM_STEP = 40  # the 40th step of the run: epoch 2 (30 steps an epoch), step 10


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("lt-bench: error: ")]
    return line


def _only_record(output: Path) -> dict:
    (path,) = (output / "records").glob("*.json")
    return read_record(path)


def _checkpoint(output: Path) -> dict:
    (folder,) = (output / "runs").iterdir()
    return read_checkpoint(folder / "checkpoint.pt")


def test_a_nan_loss_stops_at_its_step_keeps_the_last_good_checkpoint_and_records_the_failure(
    tmp_path, capsys
):
    argv = [*COMMAND, "--lr", "1e30", "--output", str(tmp_path)]
    assert main(argv) == 2
    line = _error_line(capsys)
    match = re.fullmatch(
        r"lt-bench: error: loss became (nan|inf) at epoch 1, step (\d+); the last good checkpoint "
        r"is kept in (.+); lower --lr",
        line,
    )
    assert match, line
    step = int(match[2])
    assert step >= 2  # the first step, from the initial weights, is finite
    progress = _checkpoint(tmp_path)["progress"]
    assert (progress["epoch"], progress["step"]) == (0, step - 1)  # saved after the step before
    record = _only_record(tmp_path)
    assert record["status"] == "failed" and f"epoch 1, step {step}" in record["error"]
    assert list(iter_records(tmp_path)) == []
    assert main(["leaderboard", "--output", str(tmp_path)]) == 0
    assert "causal_tde" not in capsys.readouterr().out
    assert main(argv) == 2  # the same command fails the same way, never a silent wrong number
    assert f"step {step};" in _error_line(capsys)


OUT_OF_MEMORY = {
    "cuda": lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "python": MemoryError,
    "cpu allocator": lambda: RuntimeError(
        "[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 4294967296 bytes. Error code 12 (Cannot allocate memory)"
    ),
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    output = tmp_path_factory.mktemp("uninterrupted")
    assert main([*COMMAND, "--output", str(output)]) == 0
    return _only_record(output)


@pytest.mark.parametrize("error", OUT_OF_MEMORY, ids=OUT_OF_MEMORY.keys())
def test_out_of_memory_fails_naming_the_step_and_the_rerun_resumes_exactly(
    error, uninterrupted, tmp_path, capsys, monkeypatch
):
    backward = torch.Tensor.backward
    calls = []

    def backward_that_runs_out_of_memory(self, *args, **kwargs):  # the fault, injected into torch
        calls.append(1)
        if len(calls) == OOM_STEP:
            raise OUT_OF_MEMORY[error]()
        return backward(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", backward_that_runs_out_of_memory)
    assert main([*COMMAND, "--output", str(tmp_path)]) == 2
    line = _error_line(capsys)
    assert line.startswith("lt-bench: error: out of memory on cpu at epoch 2, step 10; ")
    assert line.endswith("; pass a smaller --batch-size or --backbone")
    progress = _checkpoint(tmp_path)["progress"]
    assert (progress["epoch"], progress["step"]) == (1, 9)
    record = _only_record(tmp_path)
    assert record["status"] == "failed" and "at epoch 2, step 10" in record["error"]
    assert list(iter_records(tmp_path)) == []

    monkeypatch.setattr(torch.Tensor, "backward", backward)
    assert main([*COMMAND, "--output", str(tmp_path)]) == 0
    resumed = _only_record(tmp_path)
    for key in ("status", "metrics", "per_class_accuracy", "knobs", "test_predictions"):
        assert resumed[key] == uninterrupted[key], key


def test_an_error_that_is_not_out_of_memory_is_not_disguised_as_one(tmp_path, monkeypatch):
    def broken_backward(self, *args, **kwargs):
        raise RuntimeError("a programming error inside a backward pass")

    monkeypatch.setattr(torch.Tensor, "backward", broken_backward)
    with pytest.raises(RuntimeError, match="a programming error"):
        main([*COMMAND, "--output", str(tmp_path)])
