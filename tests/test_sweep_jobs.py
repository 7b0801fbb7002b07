"""`lt-bench sweep --jobs N` runs N local runs at once and writes exactly the records, leaderboard and
failure list that one run at a time does."""

from __future__ import annotations

import json

from lt_bench.cli import main
from lt_bench.records import iter_records

SWEEP = [
    "sweep",
    "--methods",
    "ce",
    "causal_tde",
    "focal",
    "--dataset",
    "digits_lt",
    "--seeds",
    "0",
    "--epochs",
    "1",
]


def _outcomes(output) -> dict:
    return {
        record["run_id"]: (record["metrics"], record["test_predictions"], record["knobs"]["selected"])
        for record in iter_records(output, per_image=True)
    }


def test_a_sweep_with_two_jobs_writes_the_records_of_a_sweep_with_one(tmp_path, capsys):
    assert main([*SWEEP, "--output", str(tmp_path / "one")]) == 0
    assert main([*SWEEP, "--output", str(tmp_path / "two"), "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    one, two = _outcomes(tmp_path / "one"), _outcomes(tmp_path / "two")
    assert len(one) == 3 and one == two
    assert all(f"[{index}/3]" in printed for index in (1, 2, 3))
    boards = [(tmp_path / name / "leaderboard.md").read_text().split("\n", 2)[2] for name in ("one", "two")]
    assert boards[0] == boards[1]  # after the "generated" line


def test_failing_runs_among_parallel_ones_are_listed_as_one_at_a_time_lists_them(tmp_path, capsys):
    diverging = [*SWEEP[:2], "ce", *SWEEP[5:], "--seeds", "0", "1", "--lr", "1e30"]  # a NaN loss at once
    errors = {}
    for jobs in ("1", "2"):
        assert main([*diverging, "--output", str(tmp_path / jobs), "--jobs", jobs]) == 2
        errors[jobs] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("failed: ")]
        statuses = [
            json.loads(path.read_text())["status"] for path in (tmp_path / jobs / "records").glob("*")
        ]
        assert statuses == ["failed", "failed"]
    assert len(errors["1"]) == 2 and errors["2"] == errors["1"]


def test_jobs_below_one_is_refused_in_one_line(tmp_path, capsys):
    assert main([*SWEEP, "--output", str(tmp_path), "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "lt-bench: error: --jobs must be at least 1, got 0"
    ]
