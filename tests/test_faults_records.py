"""Records under concurrency, duplication and damage: nothing lost, each run counted once, bad files
named and skipped by `lt-bench leaderboard`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lt_bench.cli import main
from lt_bench.records import SCHEMA, iter_records, record_path, write_record

WRITERS = 4
RECORDS_EACH = 50


def _record(run_id: str, top1: float, *, seed: int = 0, status: str = "finished", at: str = "") -> dict:
    return {
        "schema": SCHEMA, "status": status, "run_id": run_id, "method": "ce", "dataset": "toy_lt",
        "backbone": "net", "seed": seed, "config": {"epochs": 3, "imbalance_ratio": 10.0},
        "metrics": {"test": {"top1": top1, "many": 0.9, "medium": 0.5, "few": 0.1}}, "finished_at": at,
    }  # fmt: skip


WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from test_faults_records import _record
    from lt_bench.records import write_record
    output, writer = Path(sys.argv[1]), int(sys.argv[2])
    (output / f"ready-{writer}").touch()
    while not (output / "go").exists():
        time.sleep(0.001)
    for index in range(int(sys.argv[4])):
        write_record(output, _record(f"writer{writer}-run{index}", index / 100, seed=writer))
        write_record(output, _record("shared-run", writer / 10))
""")


def test_concurrent_writers_into_one_results_tree_lose_nothing(tmp_path):
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(writer),
                          str(Path(__file__).parent), str(RECORDS_EACH)])
        for writer in range(WRITERS)
    ]  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < WRITERS and time.monotonic() < deadline:
        time.sleep(0.01)  # every writer has imported and waits at the start line
    (tmp_path / "go").touch()
    assert [writer.wait(timeout=120) for writer in writers] == [0] * WRITERS
    records = {record["run_id"]: record for record in iter_records(tmp_path)}
    assert len(records) == WRITERS * RECORDS_EACH + 1
    for writer in range(WRITERS):
        for index in range(RECORDS_EACH):
            assert records[f"writer{writer}-run{index}"]["metrics"]["test"]["top1"] == index / 100
    assert records["shared-run"]["metrics"]["test"]["top1"] in {w / 10 for w in range(WRITERS)}
    assert not [p for p in (tmp_path / "records").iterdir() if p.name.startswith(".")]  # no temp files


def test_two_real_runs_finishing_together_both_reach_the_leaderboard(tmp_path):
    lt_bench = Path(sys.executable).parent / "lt-bench"
    command = [str(lt_bench), "run", "--method", "ce", "--dataset", "digits_lt", "--epochs", "1",
               "--batch-size", "64", "--output", str(tmp_path)]  # fmt: skip
    runs = [subprocess.Popen([*command, "--seed", str(seed)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE) for seed in (0, 1)]  # fmt: skip
    assert [run.wait(timeout=300) for run in runs] == [0, 0]
    assert sorted(record["seed"] for record in iter_records(tmp_path)) == [0, 1]
    assert main(["leaderboard", "--output", str(tmp_path)]) == 0
    board = (tmp_path / "leaderboard.md").read_text()
    assert "from 2 run records" in board
    assert re.search(r"^\| ce .*\| 2\s+\|$", board, re.MULTILINE), board  # Seeds: 2


def test_a_run_recorded_twice_under_different_names_counts_once(tmp_path, capsys):
    canonical = write_record(tmp_path, _record("toy-ce-0", 0.5, at="2026-01-02T00:00:00+00:00"))
    backup = tmp_path / "records" / "backup" / "copy of toy-ce-0.json"
    backup.parent.mkdir()
    shutil.copy(canonical, backup)
    renamed = tmp_path / "records" / "old.json"
    renamed.write_text(json.dumps(_record("toy-ce-0", 0.9, at="2026-01-03T00:00:00+00:00")))
    assert main(["leaderboard", "--output", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    board = (tmp_path / "leaderboard.md").read_text()
    assert "from 1 run records" in board and "| 50.0 " in board  # the record under the run's own name
    for copy in (backup, renamed):
        assert f"skipping {copy}: another record of run toy-ce-0 (kept {canonical})" in captured.err


def test_a_finished_copy_wins_over_a_failed_record_of_the_same_run(tmp_path):
    write_record(tmp_path, _record("toy-ce-0", 0.0, status="failed"))
    (tmp_path / "records" / "finished-copy.json").write_text(json.dumps(_record("toy-ce-0", 0.7)))
    with pytest.warns(UserWarning, match="toy-ce-0.json: another record of run toy-ce-0"):
        (record,) = iter_records(tmp_path)
    assert record["status"] == "finished" and record["metrics"]["test"]["top1"] == 0.7


DAMAGED = {
    "truncated.json": lambda: json.dumps(_record("a", 0.5))[:40],
    "binary.json": lambda: b"\x89PNG\r\n\x1a\n\x00\xff",
    "empty.json": lambda: "",
    "a-list.json": lambda: "[1, 2, 3]",
    "foreign.json": lambda: json.dumps({"name": "package.json of something else"}),
    "test-metrics-a-string.json": lambda: json.dumps({**_record("b", 0.5), "metrics": {"test": "high"}}),
    "epochs-missing.json": lambda: json.dumps({**_record("c", 0.5), "config": {}}),
    "status-unknown.json": lambda: json.dumps({**_record("d", 0.5), "status": "great"}),
    "run-id-a-number.json": lambda: json.dumps({**_record("e", 0.5), "run_id": 7}),
}


def test_damaged_and_foreign_files_are_named_and_skipped_by_the_leaderboard(tmp_path, capsys):
    write_record(tmp_path, _record("toy-ce-0", 0.5))
    for name, content in DAMAGED.items():
        data = content()
        path = tmp_path / "records" / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    assert main(["leaderboard", "--output", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    for name in DAMAGED:
        assert f"records/{name}: " in captured.err, name
    assert "from 1 run records" in captured.out
    assert record_path(tmp_path, "toy-ce-0").exists()
