"""Atomic record writes, unreadable records skipped by name, and the leaderboard's numbers."""

import json

import pytest

from lt_bench.atomic import write_json
from lt_bench.cli import main
from lt_bench.leaderboard import leaderboard_markdown, leaderboard_tables
from lt_bench.records import SCHEMA, iter_records, write_record
from lt_bench.selection import select


def _record(method: str, seed: int, top1: float, few: float | None, status: str = "finished") -> dict:
    return {
        "schema": SCHEMA,
        "status": status,
        "run_id": f"toy-{method}-{seed}",
        "method": method,
        "dataset": "toy_lt",
        "backbone": "net",
        "seed": seed,
        "config": {"epochs": 3, "imbalance_ratio": 100.0},
        "metrics": {"test": {"top1": top1, "many": 0.9, "medium": 0.5, "few": few}},
    }


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path):
    path = tmp_path / "record.json"
    write_json(path, {"value": 1})

    class Unserialisable:
        pass

    with pytest.raises(TypeError):
        write_json(path, {"value": Unserialisable()})
    assert json.loads(path.read_text()) == {"value": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temporary file left behind


def test_leaderboard_means_and_stds_by_hand(tmp_path):
    for seed, (top1, few) in enumerate([(0.50, 0.10), (0.60, 0.20), (0.70, 0.30)]):
        write_record(tmp_path, _record("ce", seed, top1, few))
    write_record(tmp_path, _record("causal_tde", 0, 0.80, None))
    write_record(tmp_path, _record("broken", 0, 0.99, 0.99, status="failed"))
    tables = leaderboard_tables(select(iter_records(tmp_path)).configurations)
    table = tables["toy_lt (imbalance ratio 100)"]
    assert table["Method"].tolist() == ["causal_tde", "ce"]  # failed runs never appear; best first
    ce = table.iloc[1]
    # mean 60.0, sample std of 50/60/70 = 10.0; few 10/20/30 → 20.0 ± 10.0
    assert ce["Overall"] == "60.0 ± 10.0" and ce["Few"] == "20.0 ± 10.0" and ce["Seeds"] == 3
    assert table.iloc[0]["Few"] == "–" and table.iloc[0]["Overall"] == "80.0"


def test_unreadable_records_are_named_and_skipped(tmp_path, capsys):
    write_record(tmp_path, _record("ce", 0, 0.5, 0.1))
    (tmp_path / "records" / "truncated.json").write_text('{"schema": "lt-bench/rec')
    (tmp_path / "records" / "foreign.json").write_text('{"hello": 1}')
    assert main(["leaderboard", "--output", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "truncated.json" in captured.err and "foreign.json" in captured.err
    assert "| ce" in captured.out
    with pytest.warns(UserWarning, match="skipping"):
        regenerated = leaderboard_markdown(iter_records(tmp_path))
    assert (tmp_path / "leaderboard.md").read_text() == regenerated
