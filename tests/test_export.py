"""`lt-bench export`: the committed mnist_lt records as tables that round-trip through pandas."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from lt_bench.cli import main
from lt_bench.export import PER_CLASS_COLUMNS, RUN_COLUMNS
from lt_bench.records import iter_records, write_record
from lt_bench.test_shift import shift_accuracies

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "results" / "records"


@pytest.fixture
def results(tmp_path) -> Path:
    """Six committed mnist_lt records, a failed one, and an older copy of one finished run."""
    mnist = [r for r in iter_records(ROOT / "results") if r["dataset"] == "mnist_lt"]
    records = sorted(mnist, key=lambda r: r["run_id"])[:6]
    if not records:
        pytest.skip("no committed run records")
    for record in records:
        write_record(tmp_path, record)
    write_record(tmp_path, {**records[0], "run_id": "failed-run", "status": "failed", "metrics": {}})
    older = {**records[1], "run_id": "older-copy", "finished_at": "2000-01-01T00:00:00+00:00"}
    write_record(tmp_path, older)
    return tmp_path


def test_csv_round_trips_with_one_row_per_finished_run(results, capsys):
    assert main(["export", "--output", str(results)]) == 0
    runs = pd.read_csv(results / "runs.csv")
    per_class = pd.read_csv(results / "runs-per-class.csv")
    assert str(results / "runs.csv") in capsys.readouterr().out
    records = {
        r["run_id"]: r for r in iter_records(results) if r["run_id"] not in ("older-copy", "failed-run")
    }
    assert list(runs.columns) == list(RUN_COLUMNS)
    assert sorted(runs["run_id"]) == sorted(records)
    for row in runs.to_dict("records"):
        record = records[row["run_id"]]
        assert (row["method"], row["seed"], row["data_seed"]) == (record["method"], record["seed"], 0)
        assert row["test_top1"] == record["metrics"]["test"]["top1"]
        assert row["val_balanced_accuracy"] == record["metrics"]["val"]["balanced_accuracy"]
        assert row["shift_backward50"] == shift_accuracies(record)["backward50"]
        assert row["config_protocol"] == "shared" and row["config_epochs"] == 30
        assert row["cost_flops_per_image"] == record["cost"]["flops_per_image"]
        assert row["cost_images_seen"] == record["cost"]["images_seen"]
    assert runs.groupby("method")["configuration"].nunique().eq(1).all()
    assert list(per_class.columns) == list(PER_CLASS_COLUMNS)
    assert len(per_class) == 10 * len(records)
    first = per_class[per_class["run_id"] == runs["run_id"][0]]
    record = records[runs["run_id"][0]]
    assert first["test_accuracy"].tolist() == record["per_class_accuracy"]
    assert first["train_count"].tolist() == record["class_counts"]
    assert first["shot_group"].tolist() == ["many"] * 3 + ["medium"] * 3 + ["few"] * 4


def test_jsonl_and_parquet_hold_the_same_rows(results, tmp_path):
    assert (
        main(["export", "--output", str(results), "--format", "jsonl", "--to", str(tmp_path / "t.jsonl")])
        == 0
    )
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    csv_rows = _csv(results)
    assert [json.loads(line)["run_id"] for line in lines] == csv_rows["run_id"].tolist()
    assert (tmp_path / "t-per-class.jsonl").exists()
    pytest.importorskip("pyarrow")
    assert (
        main(["export", "--output", str(results), "--format", "parquet", "--to", str(tmp_path / "t.pq")]) == 0
    )
    parquet = pd.read_parquet(tmp_path / "t.pq")
    pd.testing.assert_series_equal(parquet["test_top1"], csv_rows["test_top1"])


def _csv(results: Path) -> pd.DataFrame:
    assert main(["export", "--output", str(results)]) == 0
    return pd.read_csv(results / "runs.csv")


def test_parquet_without_pyarrow_is_one_line_naming_the_install(results, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now fails
    assert main(["export", "--output", str(results), "--format", "parquet"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert (
        line == "lt-bench: error: --format parquet needs pyarrow: pip install pyarrow (or use --format csv)"
    )
    assert not (results / "runs.parquet").exists()


def test_no_records_is_one_line(tmp_path, capsys):
    assert main(["export", "--output", str(tmp_path / "typo")]) == 2
    assert capsys.readouterr().err.startswith("lt-bench: error: no run records under")


def test_readme_documents_every_column():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Export columns")[1].split("\n## ")[0]
    runs_part, per_class_part = section.split("#### Per-class table")
    assert _documented(runs_part) == set(RUN_COLUMNS)
    assert _documented(per_class_part) == set(PER_CLASS_COLUMNS)


def _documented(text: str) -> set[str]:
    """The backticked names in the first cell of each markdown table row."""
    cells = [line.split("|")[1] for line in text.splitlines() if line.startswith("| `")]
    return {name for cell in cells for name in cell.split("`")[1::2]}
