"""A method's code is part of a run's identity: after a real edit of an installed plugin's source, a
finished run (and a first stage under a second) is trained again, with one line saying so.

The plugin distribution is real: modules and a `*.dist-info` folder with `entry_points.txt` on
PYTHONPATH, as `pip install` leaves them; every command runs in a new process, as a user's would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lt_bench.method_code import method_code

FIRST = '''
"""Label-smoothed cross-entropy: a plugin first stage."""

import torch.nn.functional as F

from lt_bench.method import Method

SMOOTHING = 0.1


class SmoothedCE(Method):
    def loss(self, logits, targets):
        return F.cross_entropy(logits, targets, label_smoothing=SMOOTHING)
'''
SECOND = '''
"""Evaluate the smoothed-CE run as it is: a plugin second stage that trains nothing."""

from lt_bench.method import Method


class AsIs(Method):
    first_stage = "smoothed_ce"
'''
ENTRY_POINTS = "[lt_bench.methods]\nsmoothed_ce = ltb_first:SmoothedCE\nas_is = ltb_second:AsIs\n"


@pytest.fixture
def site(tmp_path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "ltb_first.py").write_text(FIRST)
    (site / "ltb_second.py").write_text(SECOND)
    dist_info = site / "ltb_plugins-0.3.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: ltb-plugins\nVersion: 0.3\n")
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)
    return site


def lt_bench(site: Path, output: Path, method: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "lt_bench.cli", "run", "--method", method, "--dataset", "digits_lt",
               "--epochs", "1", "--threads", "1", "--output", str(output)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    return result


def record(output: Path, method: str) -> dict:
    (path,) = (output / "records").glob(f"digits_lt-{method}-*.json")
    return json.loads(path.read_text())


def edit_smoothing(site: Path, value: str) -> None:
    module = site / "ltb_first.py"
    module.write_text(module.read_text().replace("SMOOTHING = 0.1", f"SMOOTHING = {value}"))


def test_a_finished_run_of_edited_plugin_code_is_trained_again(site, tmp_path):
    output = tmp_path / "results"
    lt_bench(site, output, "smoothed_ce")
    before = record(output, "smoothed_ce")
    assert before["method_code"]["modules"] == ["ltb_first"]
    assert (before["method_code"]["package"], before["method_code"]["version"]) == ("ltb-plugins", "0.3")
    assert "already finished" in lt_bench(site, output, "smoothed_ce").stdout  # same code: reused

    edit_smoothing(site, "0.25")
    again = lt_bench(site, output, "smoothed_ce")
    after = record(output, "smoothed_ce")
    old, new = before["method_code"]["digest"], after["method_code"]["digest"]
    assert old != new and len(new) == 16
    notice = (f"{after['run_id']}: the code of method smoothed_ce changed since this run was made "
              f"({old} → {new}); running it again from scratch")  # fmt: skip
    assert notice in again.stderr.splitlines()
    assert "already finished" not in again.stdout and after["run_id"] == before["run_id"]
    assert after["metrics"]["test"]["nll"] != before["metrics"]["test"]["nll"]  # the new loss trained it


def test_a_second_stage_does_not_reuse_a_first_stage_of_edited_code(site, tmp_path):
    output = tmp_path / "results"
    lt_bench(site, output, "smoothed_ce")
    lt_bench(site, output, "as_is")
    second = record(output, "as_is")
    assert second["first_stage"]["reused"] is True
    assert second["method_code"]["modules"] == ["ltb_first", "ltb_second"]

    edit_smoothing(site, "0.3")
    again = lt_bench(site, output, "as_is")
    changed = [line for line in again.stderr.splitlines() if "changed since this run was made" in line]
    assert [line.split(":")[0] for line in changed] == [second["run_id"], second["first_stage"]["run_id"]]
    retrained = record(output, "as_is")
    assert retrained["first_stage"] == {"run_id": second["first_stage"]["run_id"], "reused": False}
    assert retrained["method_code"]["digest"] != second["method_code"]["digest"]
    assert record(output, "smoothed_ce")["method_code"]["digest"] != second["method_code"]["digest"]


def test_built_in_methods_name_their_modules_and_no_package():
    code = method_code("crt")
    assert code["modules"] == ["lt_bench.methods.ce", "lt_bench.methods.decoupling"]
    assert code["package"] is None and code["version"] is None
    assert method_code("lws")["digest"] == method_code("crt")["digest"]  # the same two files
    assert method_code("ce")["digest"] != code["digest"]
