"""`lt-bench site` from the committed records: the committed site regenerates byte for byte, its
numbers are the records', and each run page's command reproduces that run's configuration."""

import dataclasses
import json
import shlex
from pathlib import Path

import pytest

from lt_bench.cli import _config, build_parser, main
from lt_bench.config import PLACEMENT_FIELDS
from lt_bench.records import iter_records, records_dir
from lt_bench.report.runs import group_runs
from lt_bench.site.charts import pareto_frontier
from lt_bench.site.command import run_command
from lt_bench.site.tables import board_rows
from lt_bench.site.writer import site_files

RESULTS = Path(__file__).resolve().parents[1] / "results"
SITE = RESULTS / "site"


@pytest.fixture(scope="module")
def records() -> list[dict]:
    found = list(iter_records(RESULTS))
    if not found:
        pytest.skip("no committed run records")
    return found


def test_the_committed_site_regenerates_byte_for_byte_from_the_committed_records(records):
    files = site_files(records, SITE.resolve(), records_dir(RESULTS).resolve())
    committed = {path.relative_to(SITE).as_posix() for path in SITE.rglob("*") if path.is_file()}
    assert committed == set(files), "results/site is stale: run `make site`"
    for relative, content in files.items():
        assert (SITE / relative).read_bytes() == content, f"results/site/{relative} is stale: run `make site`"


def test_the_site_is_deterministic_and_refers_to_nothing_outside_it(records):
    first = site_files(records, SITE.resolve(), records_dir(RESULTS).resolve())
    assert site_files(reversed(records), SITE.resolve(), records_dir(RESULTS).resolve()) == first
    for relative, content in first.items():
        if relative.endswith(".html"):
            assert b"http://" not in content and b"https://" not in content, relative


def test_each_run_page_command_resolves_to_the_runs_own_configuration(records):
    for record in records:
        words = shlex.split(run_command(record))
        assert words[:2] == ["lt-bench", "run"]
        args = build_parser().parse_args(words[1:])
        config = _config(args, args.method, args.dataset, args.seed)
        resolved = json.loads(json.dumps(dataclasses.asdict(config)))
        assert config.run_id == record["run_id"]
        for name, value in record["config"].items():
            if name not in PLACEMENT_FIELDS:
                assert resolved[name] == value, (record["run_id"], name)


def test_a_leaderboard_rows_numbers_are_the_mean_and_std_of_its_records(records):
    rows = board_rows(group_runs(records, "mnist_lt"))
    ce = next(row for row in rows if row.variant.method == "ce")
    few = [100 * run["metrics"]["test"]["few"] for run in ce.variant.runs]
    mean = sum(few) / len(few)
    std = (sum((value - mean) ** 2 for value in few) / (len(few) - 1)) ** 0.5
    assert ce.metrics["few"].mean == pytest.approx(mean)
    assert ce.metrics["few"].std == pytest.approx(std)
    assert ce.intervals == {}  # the reference itself
    lift = next(row for row in rows if row.variant.method == "lift")
    assert lift.seed_pairs == 3
    difference = (
        sum(
            a["metrics"]["test"]["top1"] - b["metrics"]["test"]["top1"]
            for a, b in zip(lift.variant.runs, ce.variant.runs, strict=True)
        )
        / 3
    )
    assert lift.intervals["top1"].estimate == pytest.approx(difference)
    assert [row.metrics["top1"].mean for row in rows] == sorted(
        (row.metrics["top1"].mean for row in rows), reverse=True
    )


def test_the_pareto_frontier_keeps_the_points_no_cheaper_point_beats():
    points = {"a": (1.0, 0.5), "b": (2.0, 0.4), "c": (3.0, 0.7), "d": (3.0, 0.6), "e": (5.0, 0.9)}
    assert pareto_frontier(points) == ["a", "c", "e"]


def test_a_rerun_removes_stale_pages_but_a_folder_of_other_files_is_refused(records, tmp_path, capsys):
    site = tmp_path / "site"
    (tmp_path / "records").symlink_to(records_dir(RESULTS))
    assert main(["site", "--output", str(tmp_path)]) == 0
    stale = site / "runs" / "gone-run.html"
    stale.write_text("from an earlier set of records")
    assert main(["site", "--output", str(tmp_path)]) == 0
    assert not stale.exists() and (site / "index.html").exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "page.html").write_text("mine")
    capsys.readouterr()
    assert main(["site", "--output", str(tmp_path), "--to", str(other)]) == 2
    assert "not an lt-bench site" in capsys.readouterr().err
    assert (other / "page.html").read_text() == "mine"


def test_site_without_records_is_one_line_naming_the_fix(tmp_path, capsys):
    assert main(["site", "--output", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--output" in error
