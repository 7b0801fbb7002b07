"""One suite for every registered method — built-ins and installed plugins alike (benchopt style).

Each method is built, trained for one short epoch on CPU on the real digits_lt data, evaluated,
and resumed from its checkpoint; a new plugin gets these tests without writing any.
"""

import math
from pathlib import Path

import pytest
import torch

from lt_bench.checkpoint import read_checkpoint
from lt_bench.config import resolve_config
from lt_bench.leaderboard import COLUMNS, leaderboard_markdown
from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.records import record_path
from lt_bench.runner import RunPaths, run

# Every test-split metric a record carries; top5 needs more than 5 classes (digits have 10).
METRIC_COLUMNS = ("top1", "top5", "many", "medium", "few", "balanced_accuracy", "macro_f1", "ece", "nll")
ACCURACIES = ("top1", "top5", "many", "medium", "few", "balanced_accuracy", "macro_f1", "ece")


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("conformance")


def tiny_config(name: str, output: Path):
    return resolve_config(name, "digits_lt", epochs=1, output=str(output))


@pytest.mark.parametrize("name", METHODS.names())
def test_method_trains_evaluates_and_resumes_from_its_checkpoint(name, output):
    config = tiny_config(name, output)
    record = run(config)
    assert record["status"] == "finished" and record["method"] == name

    test_metrics = record["metrics"]["test"]
    for column in (*METRIC_COLUMNS, *COLUMNS):
        value = test_metrics[column]
        assert isinstance(value, float) and math.isfinite(value), column
    for column in ACCURACIES:
        assert 0.0 <= test_metrics[column] <= 1.0, column
    assert set(record["knobs"]["selected"]) == set(record["knobs"]["candidates"])
    assert f"| {name} " in leaderboard_markdown([record])

    # Round trip: with the record gone, the same config resumes from its checkpoint, trains nothing
    # more and evaluates to exactly the same numbers (method state such as TDE's average included).
    checkpoint = RunPaths.of(config).checkpoint
    written = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
    record_path(config.output, config.run_id).unlink()
    resumed = run(config)
    assert resumed["metrics"] == record["metrics"]
    assert resumed["knobs"]["selected"] == record["knobs"]["selected"]
    if written is not None:
        assert checkpoint.stat().st_mtime_ns == written


@pytest.mark.parametrize("name", METHODS.names())
def test_method_state_survives_a_checkpoint(name, output, tmp_path):
    config = tiny_config(name, output)
    checkpoint = RunPaths.of(config).checkpoint
    if not checkpoint.exists():
        run(config)
    method_class = METHODS.get(name)
    assert issubclass(method_class, Method)
    saved = read_checkpoint(checkpoint)["method"] if checkpoint.exists() else None
    if saved is None:  # a stage that trains nothing keeps no checkpoint of its own
        assert method_class.first_stage is not None
        assert method_class(_context()).second_stage_epochs() == 0
        return
    fresh = method_class(_context())
    fresh.load_state_dict(saved)
    path = tmp_path / "state.pt"
    torch.save(fresh.state_dict(), path)
    assert _equal(torch.load(path, weights_only=False), saved)


@pytest.mark.parametrize("name", METHODS.names())
def test_method_head_gives_one_logit_per_class_and_a_finite_loss(name):
    method = METHODS.get(name)(_context())
    head = method.build_head()
    features = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    logits = head(features)
    assert logits.shape == (4, 10)
    loss = method.loss(logits, torch.tensor([0, 3, 9, 9]))
    assert loss.dim() == 0 and math.isfinite(loss.item())
    loss.backward()
    assert any(p.grad is not None for p in head.parameters())


def _context() -> MethodContext:
    counts = (120, 94, 73, 57, 44, 34, 27, 21, 16, 12)
    return MethodContext("digits_lt", 10, counts, 8, 1, 7, 0.05)


def _equal(first, second) -> bool:
    if isinstance(first, torch.Tensor):
        return isinstance(second, torch.Tensor) and torch.equal(first, second)
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(_equal(first[k], second[k]) for k in first)
    if isinstance(first, (list, tuple)):
        return len(first) == len(second) and all(_equal(a, b) for a, b in zip(first, second, strict=True))
    return first == second
