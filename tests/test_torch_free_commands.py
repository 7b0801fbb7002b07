"""The results commands start without torch: they read records, never tensors, so a user tabulating
hundreds of runs on a login node pays neither torch's import time nor its memory."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys
from lt_bench.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:  # --version exits from argparse
    code = exit.code
loaded = sorted(name for name in sys.modules if name == "torch" or name.startswith("torch."))
print("torch modules:", len(loaded), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize(
    "command",
    [
        ["--version"],
        ["leaderboard", "--output", "{results}", "--write", "{tmp}/board.md"],
        ["leaderboard", "--test-shift", "--output", "{results}", "--write", "{tmp}/shift.md"],
        ["export", "--output", "{results}", "--to", "{tmp}/runs.csv"],
        ["status", "--output", "{tmp}/out"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_a_results_command_on_the_committed_records_never_imports_torch(command, tmp_path):
    record = sorted((ROOT / "results" / "records").glob("mnist_lt-ce-*.json"))[0]
    (tmp_path / "out" / "runs" / record.stem).mkdir(parents=True)  # a run folder and its record
    (tmp_path / "out" / "records").mkdir()
    for path in record.parent.glob(f"{record.stem}.*"):
        shutil.copy(path, tmp_path / "out" / "records")
    filled = [part.format(results=ROOT / "results", tmp=tmp_path) for part in command]
    finished = subprocess.run(
        [sys.executable, "-c", PROBE, *filled], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert finished.stderr.splitlines()[-1] == "torch modules: 0"
