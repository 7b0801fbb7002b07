"""A method from an installed distribution's `lt_bench.methods` entry point runs like a built-in.

The distribution is simulated for real: a module and a `*.dist-info` folder with `entry_points.txt`
on PYTHONPATH, which is exactly what `pip install` leaves in site-packages.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
PLUGIN_MODULE = '''
"""Cross-entropy with label smoothing: a third-party lt-bench method."""

import torch.nn.functional as F

from lt_bench.method import Method


class LabelSmoothingCE(Method):
    """Cross-entropy against targets smoothed by 0.1 (Szegedy et al., CVPR 2016)."""

    description = "label-smoothed cross-entropy (demo plugin)"

    def loss(self, logits, targets):
        return F.cross_entropy(logits, targets, label_smoothing=0.1)
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    (site / "ltb_smoothing.py").write_text(PLUGIN_MODULE)
    dist_info = site / "ltb_smoothing-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: ltb-smoothing\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[lt_bench.methods]\nlabel_smoothing = ltb_smoothing:LabelSmoothingCE\n"
    )
    return site


def python(args: list[str], site: Path, cwd: Path = REPOSITORY) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, env=env, cwd=cwd
    )


def test_installed_plugin_is_listed_and_runs_through_the_cli(plugin_path, tmp_path):
    listing = python(["-m", "lt_bench.cli", "list", "methods"], plugin_path)
    assert listing.returncode == 0, listing.stderr
    assert "label_smoothing  " in listing.stdout and "demo plugin" in listing.stdout

    output = tmp_path / "results"
    result = python(
        [
            "-m",
            "lt_bench.cli",
            "run",
            "--method",
            "label_smoothing",
            "--dataset",
            "digits_lt",
            "--epochs",
            "1",
            "--output",
            str(output),
        ],
        plugin_path,
    )
    assert result.returncode == 0, result.stderr
    (record_file,) = (output / "records").glob("*.json")
    record = json.loads(record_file.read_text())
    assert record["method"] == "label_smoothing" and record["status"] == "finished"
    assert 0.0 <= record["metrics"]["test"]["top1"] <= 1.0


def test_installed_plugin_gets_the_conformance_suite_for_free(plugin_path):
    result = python(
        [
            "-m",
            "pytest",
            "-o",
            "addopts=",
            "-v",
            "-p",
            "no:cacheprovider",
            str(REPOSITORY / "tests" / "test_conformance.py"),
            "-k",
            "label_smoothing",
        ],
        plugin_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if "[label_smoothing] PASSED" in line]
    assert len(passed) == 3, result.stdout
