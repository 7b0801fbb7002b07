"""Rows are configurations: the leaderboard and the report select and group committed mnist_lt records
(copied, their config and metrics edited) the same way, newest record per configuration and seed."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from lt_bench.cli import main
from lt_bench.leaderboard import leaderboard_markdown, leaderboard_tables, mean_std
from lt_bench.records import iter_records, read_record, records_dir, write_record
from lt_bench.report.runs import group_runs
from lt_bench.selection import configuration, select

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "records"


def committed(method: str, seed: int) -> dict:
    (path,) = COMMITTED.glob(f"mnist_lt-{method}-lt_small_cnn-seed{seed}-*.json")
    return {key: value for key, value in read_record(path).items() if key != "arrays"}  # arrays inline


def variant(method: str, seed: int, run_id: str, top1: float, *, config=None, at: str = "", **fields) -> dict:
    """A committed record with its config, overall accuracy, finish time and record fields changed."""
    record = copy.deepcopy(committed(method, seed))
    record["config"].update(config or {})
    record["data_seed"] = record["config"]["data_seed"]
    record["run_id"] = run_id
    record["metrics"]["test"]["top1"] = top1
    record["finished_at"] = at or record["finished_at"]
    record.update(fields)
    return record


FIVE_CONFIGURATIONS = [
    variant("causal_tde", 0, "plain-seed0", 0.90),
    variant("causal_tde", 1, "plain-seed1", 0.80),
    variant("causal_tde", 0, "lr", 0.70, config={"lr": 0.1}),
    variant("causal_tde", 0, "batch", 0.60, config={"batch_size": 64}),
    variant("causal_tde", 0, "data-seed", 0.50, config={"data_seed": 1}),
    variant("causal_tde", 0, "alpha", 0.40, config={"knobs": {"alpha": 2.0}}),
]


@pytest.fixture
def five(tmp_path) -> Path:
    for record in FIVE_CONFIGURATIONS:
        write_record(tmp_path, record)
    return tmp_path


def _table(markdown: str, title: str) -> list[list[str]]:
    """The cells of the markdown table under `## title`, header first."""
    section = markdown.split(f"## {title}\n\n")[1].split("\n\n")[0]
    lines = [line for line in section.splitlines() if not line.startswith("|:")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_five_configurations_of_one_method_are_five_rows_that_show_what_differs(five):
    board = leaderboard_markdown(iter_records(five))
    header, *rows = _table(board, "mnist_lt (imbalance ratio 100)")
    assert header == ["Method", "Backbone", "Epochs", "batch size", "lr", "data seed", "knobs",
                      "Many", "Medium", "Few", "Overall", "Seeds"]  # fmt: skip
    got = [(row[3], row[4], row[5], row[6], row[10], row[11]) for row in rows]
    assert got == [
        ("32", "0.05", "0", "–", "85.0 ± 7.1", "2"),  # mean of 90 and 80, sample std 7.07
        ("32", "0.1", "0", "–", "70.0", "1"),
        ("64", "0.05", "0", "–", "60.0", "1"),
        ("32", "0.05", "1", "–", "50.0", "1"),
        ("32", "0.05", "0", "alpha=2", "40.0", "1"),
    ]
    assert "from 6 run records" in board and "Each row is one configuration" in board


def test_the_report_groups_the_same_configurations_with_the_same_numbers(five):
    records = list(iter_records(five))
    runs = group_runs(records, "mnist_lt")
    (variants,) = runs.settings.values()
    assert sorted(variants) == [
        "causal_tde (batch size 32, lr 0.05, data seed 0)",
        "causal_tde (batch size 32, lr 0.05, data seed 0, knobs alpha=2)",
        "causal_tde (batch size 32, lr 0.05, data seed 1)",
        "causal_tde (batch size 32, lr 0.1, data seed 0)",
        "causal_tde (batch size 64, lr 0.05, data seed 0)",
    ]
    board_groups = {frozenset(r["run_id"] for r in entry.records) for entry in select(records).configurations}
    assert {frozenset(r["run_id"] for r in v.runs) for v in variants.values()} == board_groups
    (table,) = leaderboard_tables(select(records).configurations).values()
    for label, entry in variants.items():
        overall = mean_std(pd.Series([r["metrics"]["test"]["top1"] for r in entry.runs]))
        assert overall in table["Overall"].tolist(), label


def test_the_report_page_has_a_row_per_configuration(five, capsys):
    write_record(five, committed("ce", 0))
    assert main(["report", "--dataset", "mnist_lt", "--output", str(five)]) == 0
    page = (five / "report" / "mnist_lt.md").read_text()
    summary = page.split("Mean ± std over seeds")[1].split("###")[0]
    rows = re.findall(r"^\| (causal_tde[^|]*?|ce[^|]*?) +\| (\d) ", summary, re.MULTILINE)
    assert rows == [
        ("causal_tde (batch size 32, lr 0.05, data seed 0)", "2"),
        ("causal_tde (batch size 32, lr 0.05, data seed 0, knobs alpha=2)", "1"),
        ("causal_tde (batch size 32, lr 0.05, data seed 1)", "1"),
        ("causal_tde (batch size 32, lr 0.1, data seed 0)", "1"),
        ("causal_tde (batch size 64, lr 0.05, data seed 0)", "1"),
        ("ce (batch size 32, lr 0.05, data seed 0)", "1"),
    ]
    assert "### Paired differences against ce (batch size 32, lr 0.05, data seed 0)" in page


def older(record: dict) -> dict:
    """`record` as written before the protocol, selection, precision and world-size fields existed."""
    for name in ("protocol", "select", "precision"):
        record["config"].pop(name, None)
    for name in ("precision", "world_size"):
        record.pop(name, None)
    return record


def test_an_older_record_without_the_newer_fields_is_the_same_run_and_the_newest_counts(tmp_path):
    old = older(variant("ce", 0, "old-id", 0.60, at="2026-01-01T00:00:00+00:00"))
    assert "protocol" not in old["config"] and "precision" not in old
    new = variant(
        "ce", 0, "new-id", 0.70, at="2026-02-01T00:00:00+00:00",
        config={"protocol": "shared", "select": "last"}, precision="fp32", world_size=1,
    )  # fmt: skip
    half = variant("ce", 0, "bf16", 0.65, precision="bf16", world_size=2)
    for record in (new, old, half):
        write_record(tmp_path, record)
    assert configuration(old) == configuration(new) != configuration(half)
    selection = select(iter_records(tmp_path))
    assert selection.superseded == 1
    assert sorted(r["run_id"] for r in selection.records) == ["bf16", "new-id"]
    board = leaderboard_markdown(iter_records(tmp_path))
    assert "1 older records of the same configuration and seed were left out" in board
    header, *rows = _table(board, "mnist_lt (imbalance ratio 100)")
    assert header[3:5] == ["world size", "precision"]
    assert [[*row[3:5], row[8]] for row in rows] == [["1", "fp32", "70.0"], ["2", "bf16", "65.0"]]
    assert group_runs(iter_records(tmp_path), "mnist_lt").superseded == 1


def test_a_paper_protocol_run_gets_its_own_table(tmp_path):
    write_record(tmp_path, variant("ce", 0, "shared", 0.7))
    write_record(tmp_path, variant("ce", 0, "paper", 0.6, config={"protocol": "paper", "lr": 0.1}))
    board = leaderboard_markdown(iter_records(tmp_path))
    titles = re.findall(r"^## (.*)$", board, re.MULTILINE)
    assert titles == ["mnist_lt (imbalance ratio 100)", "mnist_lt (imbalance ratio 100, paper protocol)"]
    assert "Each row is one configuration" not in board  # one row per table: nothing to tell apart
    (setting, paper) = group_runs(iter_records(tmp_path), "mnist_lt").settings
    assert paper.title == "lt_small_cnn, 30 epochs, imbalance ratio 100, paper protocol"
    assert (setting.slug, paper.slug) == ("lt_small_cnn-30ep-ir100", "lt_small_cnn-30ep-ir100-paper")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_finished_record_with_non_finite_test_metrics_is_named_and_skipped(tmp_path, capsys, value):
    write_record(tmp_path, variant("ce", 0, "good", 0.7))
    bad = json.dumps(variant("ce", 1, "bad", 0.5)).replace('"top1": 0.5', f'"top1": {value}')
    (records_dir(tmp_path) / "bad.json").write_text(bad)
    assert main(["leaderboard", "--output", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    message = f"bad.json: metrics.test.top1 is {float(value)}, not a finite number (or null); rerun"
    assert message in captured.err
    assert "from 1 run records" in captured.out and "| 70.0 " in captured.out


def test_method_code_tells_rows_apart_only_between_runs_of_one_method():
    code = {"modules": [], "package": None, "version": None}
    records = [
        variant("ce", 0, "ce-old", 0.7, method_code={**code, "digest": "aaaaaaaaaaaa0000"}),
        variant("ce", 0, "ce-new", 0.8, method_code={**code, "digest": "bbbbbbbbbbbb0000"}),
        variant("causal_tde", 0, "tde", 0.9, method_code={**code, "digest": "cccccccccccc0000"}),
    ]
    title = "mnist_lt (imbalance ratio 100)"
    header, *rows = _table(leaderboard_markdown(records), title)
    assert "method code" in header
    assert sorted(row[header.index("method code")] for row in rows) == [
        "aaaaaaaaaa",
        "bbbbbbbbbb",
        "cccccccccc",
    ]
    header, *rows = _table(leaderboard_markdown([records[1], records[2]]), title)
    assert "method code" not in header and len(rows) == 2  # two methods: different code by nature
