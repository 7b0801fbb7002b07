"""A plugin method that breaks the contract ends in one line naming the method, its package and the
rule, with a failed record; a sweep goes on past it; --debug / LT_BENCH_DEBUG=1 show the traceback.

The plugin is installed for real, as `pip install` leaves it (see test_plugin_entry_point)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from test_plugin_entry_point import _install, python

BROKEN = '''
"""Methods that break the lt-bench contract (test plugin)."""

import torch.nn.functional as F

from lt_bench.method import Method


class RaisingLoss(Method):
    description = "a loss that raises (test plugin)"

    def loss(self, logits, targets):
        raise ValueError("the margins are not ready")


class PerImageLoss(Method):
    description = "a loss per image, not reduced (test plugin)"

    def loss(self, logits, targets):
        return F.cross_entropy(logits, targets, reduction="none")
'''
CLI = ["-m", "lt_bench.cli"]
OPTIONS = ["--dataset", "digits_lt", "--epochs", "1", "--batch-size", "64"]
RAISE_LINE = (
    "lt-bench: error: method 'raising_loss' of the package ltb-broken: its hook loss raised ValueError: "
    "the margins are not ready; the Method contract says a hook returns its value and never raises; fix "
    "the plugin or report it to ltb-broken's authors (--debug shows the traceback)"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("broken-site")
    entry_points = {"raising_loss": "ltb_broken:RaisingLoss", "per_image_loss": "ltb_broken:PerImageLoss"}
    _install(site, "ltb-broken", {"ltb_broken": BROKEN}, entry_points)
    return site


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("lt-bench: error: ")]


def test_a_sweep_survives_a_plugin_exception_and_writes_the_leaderboard(site, tmp_path):
    output = tmp_path / "results"
    sweep = ["sweep", "--methods", "raising_loss", "ce", "--output", str(output)]
    result = python([*CLI, *sweep, *OPTIONS], site)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"failed: {RAISE_LINE.removeprefix('lt-bench: error: ')}" in result.stdout
    records = [json.loads(path.read_text()) for path in (output / "records").glob("*.json")]
    status = {record["method"]: record["status"] for record in records}
    assert status == {"raising_loss": "failed", "ce": "finished"}
    failed = next(record for record in records if record["method"] == "raising_loss")
    assert "its hook loss raised ValueError: the margins are not ready" in failed["error"]
    assert "| ce " in (output / "leaderboard.md").read_text()


def test_a_loss_that_is_not_a_scalar_names_the_rule_and_debug_shows_the_traceback(site, tmp_path):
    run = ["run", "--method", "per_image_loss", "--output", str(tmp_path)]
    result = python([*CLI, *run, *OPTIONS], site)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (line,) = _error_lines(result.stderr)
    assert line == (
        "lt-bench: error: method 'per_image_loss' of the package ltb-broken: its loss returned a tensor of "
        "shape [64] and dtype torch.float32, but the Method contract says the training loss is a scalar "
        "floating-point tensor; fix the plugin or report it to ltb-broken's authors (--debug shows the "
        "traceback)"
    )
    (record_path,) = (tmp_path / "records").glob("*.json")
    assert json.loads(record_path.read_text())["status"] == "failed"

    debug = python([*CLI, *run, *OPTIONS, "--debug"], site)
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr
    assert "ContractViolation: its loss returned a tensor of shape [64]" in debug.stderr
    assert _error_lines(debug.stderr) == [line]


def test_lt_bench_debug_shows_a_raising_hooks_traceback(site, tmp_path, monkeypatch):
    monkeypatch.setenv("LT_BENCH_DEBUG", "1")
    run = ["run", "--method", "raising_loss", "--output", str(tmp_path)]
    result = python([*CLI, *run, *OPTIONS], site)
    assert result.returncode == 2 and _error_lines(result.stderr) == [RAISE_LINE], result.stderr
    assert 'raise ValueError("the margins are not ready")' in result.stderr
    assert os.environ["LT_BENCH_DEBUG"] == "1"
