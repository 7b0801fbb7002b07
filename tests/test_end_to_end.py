"""Real runs through the `lt-bench` command: CE and causal TDE on the offline MNIST-LT digits."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lt_bench.config import resolve_config
from lt_bench.records import read_record
from lt_bench.runner import run


def lt_bench(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lt_bench.cli", *args]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONHASHSEED": "0"}
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def mnist_results(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("mnist")
    lt_bench(
        "sweep",
        "--methods",
        "ce",
        "causal_tde",
        "--dataset",
        "mnist_lt",
        "--seeds",
        "0",
        "--epochs",
        "4",
        "--output",
        str(output),
    )
    return output


def _records(output: Path) -> dict[str, dict]:
    return {r["method"]: r for r in (read_record(p) for p in (output / "records").glob("*.json"))}


def test_each_run_writes_a_complete_record(mnist_results):
    records = _records(mnist_results)
    assert set(records) == {"ce", "causal_tde"}
    for record in records.values():
        assert record["status"] == "finished"
        assert record["class_counts"] == [400, 239, 143, 86, 51, 30, 18, 11, 6, 4]
        assert record["shot_groups"] == {"many": [0, 1, 2], "medium": [3, 4, 5], "few": [6, 7, 8, 9]}
        test = record["metrics"]["test"]
        for key in ("top1", "top5", "many", "medium", "few", "macro_f1", "ece", "nll"):
            assert isinstance(test[key], float), key
        assert len(record["per_class_accuracy"]) == 10 and len(record["test_predictions"]) == 800
        assert record["config"]["epochs"] == 4 and record["config"]["batch_size"] == 32
        assert record["versions"]["torch"] and "wall_time_s" in record
    tde = records["causal_tde"]
    assert set(tde["knobs"]["selected"]) == {"alpha"}
    searched = tde["knobs"]["validation"]
    assert len(searched) == len(tde["knobs"]["candidates"]["alpha"])
    best = max(entry["balanced_accuracy"] for entry in searched)
    chosen = next(e for e in searched if e["knobs"] == tde["knobs"]["selected"])
    assert chosen["balanced_accuracy"] == best  # selected on validation data
    assert records["ce"]["knobs"] == {
        "selected": {},
        "candidates": {},
        "validation": records["ce"]["knobs"]["validation"],
    }


def test_the_sweep_regenerates_the_leaderboard(mnist_results):
    board = (mnist_results / "leaderboard.md").read_text()
    assert "## mnist_lt (imbalance ratio 100)" in board
    assert "| causal_tde" in board and "| ce " in board


def test_rerunning_a_finished_run_reuses_its_record(mnist_results):
    result = lt_bench(
        "run", "--method", "ce", "--dataset", "mnist_lt", "--epochs", "4", "--output", str(mnist_results)
    )
    assert "already finished" in result.stdout


def test_same_seed_gives_the_same_metrics(tmp_path):
    config = resolve_config("causal_tde", "digits_lt", epochs=2, output=str(tmp_path / "a"))
    first = run(config)
    second = run(config.replace(output=str(tmp_path / "b")))
    assert first["metrics"] == second["metrics"]
    assert first["per_class_accuracy"] == second["per_class_accuracy"]


def test_imagenet_lt_without_data_says_what_is_needed(tmp_path):
    result = lt_bench(
        "run", "--method", "causal_tde", "--dataset", "imagenet_lt", "--output", str(tmp_path), check=False
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "ImageNet_LT" in lines[0] and "--data-root" in lines[0]


def test_channels_last_and_compile_train_the_same_run_faster_kernels_only(tmp_path):
    plain = run(resolve_config("ce", "digits_lt", epochs=2, output=str(tmp_path / "plain")))
    config = resolve_config(
        "ce", "digits_lt", epochs=2, output=str(tmp_path / "fast"), channels_last=True, compile=True
    )
    fast = run(config)
    assert fast["run_id"] == plain["run_id"]  # speed options are not part of what a run computes
    assert fast["config"]["channels_last"] and fast["config"]["compile"]
    # Other kernels round differently: the same model up to a few of the 400 test images.
    assert abs(fast["metrics"]["test"]["top1"] - plain["metrics"]["test"]["top1"]) <= 0.02
    checkpoints = [torch.load(Path(c.output) / "runs" / c.run_id / "checkpoint.pt", weights_only=False)
                   for c in (config.replace(output=str(tmp_path / "plain")), config)]  # fmt: skip
    assert checkpoints[0]["model"].keys() == checkpoints[1]["model"].keys()
