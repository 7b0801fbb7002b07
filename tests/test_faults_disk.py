"""A disk that fills up (or a file-size limit) while a checkpoint is written: one line naming the
file, a `failed` record, the last good checkpoint kept, and the same command resumes once there is room.

Both faults are real: a 352 KiB tmpfs mounted for the test (root only; skipped elsewhere) gives the
kernel's ENOSPC, and RLIMIT_FSIZE in a child process gives its EFBIG on any Linux machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lt_bench.checkpoint import read_checkpoint
from lt_bench.cli import main

COMMAND = ["run", "--method", "ce", "--dataset", "digits_lt", "--epochs", "2", "--threads", "1"]
CHECKPOINT_BYTES = 217_000  # about one lt_small_cnn checkpoint on digits_lt


def _error_line(err: str) -> str:
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("lt-bench: error: ")]
    return line


def _only(folder: Path, pattern: str) -> Path:
    (path,) = folder.glob(pattern)
    return path


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs with room for one checkpoint and the small files, not for a second checkpoint."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=352k", "tmpfs", str(disk)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()})")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_while_checkpointing_fails_in_one_line_and_the_run_resumes_later(small_disk, capsys):
    argv = [*COMMAND, "--output", str(small_disk)]
    assert main(argv) == 2
    line = _error_line(capsys.readouterr().err)
    folder = _only(small_disk / "runs", "*")
    assert line == (
        f"lt-bench: error: cannot write {folder / 'checkpoint.pt'} (No space left on device) at epoch 2, "
        f"step 7; the last good checkpoint is kept in {folder}; free space there (or pass another "
        f"--output) and rerun the same command to resume"
    )
    assert read_checkpoint(folder / "checkpoint.pt")["progress"]["epoch"] == 1
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # no half-written file left
    record = json.loads(_only(small_disk / "records", "*.json").read_text())
    assert record["status"] == "failed" and "No space left on device" in record["error"]

    subprocess.run(["mount", "-o", "remount,size=2m", str(small_disk)], check=True)  # room again
    assert main(argv) == 0
    log = [json.loads(entry) for entry in (folder / "log.jsonl").read_text().splitlines()]
    assert [entry["epoch"] for entry in log] == [1, 2]  # epoch 1 was not trained twice
    assert json.loads(_only(small_disk / "records", "*.json").read_text())["status"] == "finished"


LIMITED = """
import resource, sys
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from lt_bench.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_a_file_size_limit_while_checkpointing_fails_in_one_line_with_a_failed_record(tmp_path):
    output = tmp_path / "results"
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    limit = str(CHECKPOINT_BYTES // 4)  # records and logs fit, a checkpoint does not
    result = subprocess.run([sys.executable, "-c", LIMITED, limit, *COMMAND, "--output", str(output)],
                            capture_output=True, text=True, timeout=300, env=environment)  # fmt: skip
    assert result.returncode == 2, result.stderr
    folder = _only(output / "runs", "*")
    assert re.fullmatch(
        rf"lt-bench: error: cannot write {re.escape(str(folder / 'checkpoint.pt'))} \(File too large\) at "
        r"epoch 1, step 7; free space there \(or pass another --output\) and rerun the same command to "
        r"resume",
        _error_line(result.stderr),
    )
    record = json.loads(_only(output / "records", "*.json").read_text())
    assert record["status"] == "failed" and "(File too large) at epoch 1, step 7" in record["error"]
    assert not (folder / "checkpoint.pt").exists()


def test_a_file_size_limit_while_keeping_the_best_epoch_fails_in_one_line(tmp_path):
    output = tmp_path / "results"
    environment = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    limit = str(CHECKPOINT_BYTES // 4)
    command = [*COMMAND, "--select", "best-val", "--output", str(output)]
    result = subprocess.run([sys.executable, "-c", LIMITED, limit, *command],
                            capture_output=True, text=True, timeout=300, env=environment)  # fmt: skip
    assert result.returncode == 2, result.stderr
    line = _error_line(result.stderr)
    folder = _only(output / "runs", "*")
    assert line.startswith(
        f"lt-bench: error: cannot write {folder / 'best.pt'} (File too large) at epoch 1, step 7;"
    )
    record = json.loads(_only(output / "records", "*.json").read_text())
    assert record["status"] == "failed" and "best.pt" in record["error"]
