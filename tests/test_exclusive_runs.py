"""One process owns a run id at a time (an flock on `<output>/locks/<run_id>.lock`), and a failed
attempt never replaces a finished record."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_faults_disk import CHECKPOINT_BYTES, COMMAND, LIMITED

from lt_bench.cli import main
from lt_bench.config import resolve_config
from lt_bench.records import iter_records
from lt_bench.run_lock import lock_path

RUN = ["run", "--method", "ce", "--dataset", "digits_lt", "--epochs", "1", "--batch-size", "64"]
HOLDER = """
import sys
from lt_bench.run_lock import exclusive_run
with exclusive_run(sys.argv[1], sys.argv[2]):
    print("holding", flush=True)
    sys.stdin.readline()
"""


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if line.startswith("lt-bench: error: ")]
    assert len(lines) == 1 and "Traceback" not in error, error
    return lines[0]


def test_a_second_process_with_the_same_run_id_stops_in_one_line_and_may_run_it_after(tmp_path, capsys):
    run_id = resolve_config("ce", "digits_lt", epochs=1, batch_size=64).run_id
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), run_id], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline() == "holding\n"
        assert main([*RUN, "--output", str(tmp_path)]) == 2
        error = _one_error(capsys)
        assert f"run {run_id} is being run by process {holder.pid} on " in error
        assert error.endswith("wait for it to end, then rerun the same command to use its record")
        assert not (tmp_path / "runs").exists() and not (tmp_path / "records").exists()
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    assert main([*RUN, "--output", str(tmp_path)]) == 0  # the lock went with its process
    assert lock_path(tmp_path, run_id).exists()


def test_two_real_runs_of_one_id_leave_one_finished_record_and_no_failure(tmp_path):
    lt_bench = Path(sys.executable).parent / "lt-bench"
    runs = [
        subprocess.Popen([str(lt_bench), *RUN, "--output", str(tmp_path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    results = [(run.wait(timeout=300), run.stdout.read(), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 0], [0, 2]), results  # the second waits for nothing: it stops, or finds the record
    for code, out, err in results:
        if code == 2:
            assert "is being run by process" in err and "Traceback" not in err
        else:
            assert "top1" in out or "already finished" in out
    (record,) = iter_records(tmp_path, finished_only=False)
    assert record["status"] == "finished"
    assert [path.name for path in (tmp_path / "records").glob("*.json")] == [f"{record['run_id']}.json"]
    folder = tmp_path / "runs" / record["run_id"]
    assert not [path.name for path in folder.iterdir() if path.name.endswith(".tmp")]


def test_checkpoint_staging_names_belong_to_their_process(tmp_path):
    from lt_bench.checkpoint import save_checkpoint

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})
    taken = tmp_path / ".checkpoint.pt.previous.tmp"  # the fixed name a twin process once shared
    taken.mkdir()  # a name taken by someone else cannot stop this process's checkpoint
    save_checkpoint(path, {"step": 2})
    assert (tmp_path / "checkpoint.pt.previous").exists() and taken.is_dir()


def test_a_rerun_that_fails_is_written_beside_the_finished_record_which_the_leaderboard_keeps(
    tmp_path, capsys
):
    output = tmp_path / "results"
    assert main([*COMMAND, "--output", str(output)]) == 0
    (finished_path,) = (output / "records").glob("*.json")
    finished = finished_path.read_text()
    # The rerun fails for real: a file size limit lets records through, not a checkpoint.
    limit = str(CHECKPOINT_BYTES // 4)
    argv = [sys.executable, "-c", LIMITED, limit, *COMMAND, "--rerun", "--output", str(output)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "(File too large)" in result.stderr, result.stderr
    assert finished_path.read_text() == finished  # untouched
    failed = json.loads(finished_path.with_name(f"{finished_path.stem}.failed.json").read_text())
    assert failed["status"] == "failed" and "(File too large)" in failed["error"]
    capsys.readouterr()
    assert main(["leaderboard", "--output", str(output)]) == 0
    board = capsys.readouterr().out
    assert re.search(r"^\| ce .*\| 1\s+\|$", board, re.MULTILINE), board  # the finished run, one seed

    assert main([*COMMAND, "--output", str(output)]) == 0  # still finished: not trained again
    assert "already finished" in capsys.readouterr().out
    assert main([*COMMAND, "--rerun", "--output", str(output)]) == 0  # a rerun that finishes replaces both
    assert [path.name for path in (output / "records").glob("*.json")] == [finished_path.name]
