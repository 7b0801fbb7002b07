"""A run's result is a function of its configuration alone: second stages give the same numbers and
weights whether their first stage trained in the same process or was reused from an earlier run, and
the record says what else decides the numbers (threads, processes, precision)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lt_bench.checkpoint import read_checkpoint
from lt_bench.config import resolve_config
from lt_bench.method import METHODS
from lt_bench.runner import RunPaths, run

SECOND_STAGES = [name for name, cls in METHODS.items() if cls.first_stage is not None]
RESULT_FIELDS = ("metrics", "per_class_accuracy", "calibration", "knobs", "test_predictions")


def config(method: str, output: Path):
    return resolve_config(method, "digits_lt", epochs=2, output=str(output), threads=1)


@pytest.fixture(scope="module")
def reused_first_stages(tmp_path_factory) -> dict[str, dict]:
    """Each second stage on one first-stage run trained earlier, after unrelated random draws."""
    output = tmp_path_factory.mktemp("reused")
    firsts = {METHODS.get(name).first_stage for name in SECOND_STAGES}
    for first in sorted(firsts):
        run(config(first, output))
    records = {}
    for name in SECOND_STAGES:
        torch.rand(1000)  # whatever the process drew before must not matter
        records[name] = run(config(name, output))
        assert records[name]["first_stage"]["reused"]
    return {"output": output, "records": records}


def test_second_stages_exist_to_be_checked():
    assert {"crt", "lws", "tau_norm", "logit_adjustment_posthoc"} <= set(SECOND_STAGES)


@pytest.mark.parametrize("name", SECOND_STAGES)
def test_a_second_stage_is_the_same_whether_its_first_stage_trained_in_process_or_was_reused(
    name, reused_first_stages, tmp_path
):
    fresh = run(config(name, tmp_path))  # trains its first stage in this process first
    assert fresh["first_stage"]["reused"] is False
    reused = reused_first_stages["records"][name]
    assert fresh["run_id"] == reused["run_id"]
    for field in RESULT_FIELDS:
        assert fresh[field] == reused[field], field
    paths = [
        RunPaths.of(config(name, output)).checkpoint for output in (tmp_path, reused_first_stages["output"])
    ]
    if paths[0].exists() or paths[1].exists():  # stages that train (cRT, LWS) checkpoint their weights
        weights = [read_checkpoint(path)["model"] for path in paths]
        assert weights[0].keys() == weights[1].keys()
        for key in weights[0]:
            assert torch.equal(weights[0][key], weights[1][key]), key


def test_the_record_keeps_threads_processes_and_precision(reused_first_stages):
    record = reused_first_stages["records"][SECOND_STAGES[0]]
    assert record["torch_threads"] == 1 and record["config"]["threads"] == 1
    assert record["world_size"] == 1 and record["precision"] == "fp32"
