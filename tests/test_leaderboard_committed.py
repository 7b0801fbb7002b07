"""The committed leaderboard is exactly what the committed run records generate (never hand-edited)."""

from pathlib import Path

import pytest

from lt_bench.leaderboard import leaderboard_markdown
from lt_bench.records import iter_records, records_dir

RESULTS = Path(__file__).resolve().parents[1] / "results"


def test_committed_leaderboard_regenerates_from_the_committed_records():
    records = list(iter_records(RESULTS))
    if not records:
        pytest.skip(f"no run records under {records_dir(RESULTS)} yet (the lead commits the mnist_lt sweep)")
    committed = RESULTS / "leaderboard.md"
    assert committed.exists(), "results/leaderboard.md is missing: run `lt-bench leaderboard`"
    assert leaderboard_markdown(records) == committed.read_text()
