"""Malformed and foreign records: checked against the schema when read, named in one line and
skipped by every results command, which still shows the other records."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lt_bench.cli import main
from lt_bench.record_schema import RecordInvalid, check_record
from lt_bench.records import read_record, records_dir

COMMITTED = Path(__file__).resolve().parent.parent / "results" / "records"
CE = sorted(COMMITTED.glob("mnist_lt-ce-lt_small_cnn-seed*.json"))
SADE = sorted(COMMITTED.glob("mnist_lt-sade-lt_small_cnn-seed*.json"))  # holds test-time adaptation


def _load(path: Path) -> dict:
    """A committed record with its arrays inline (the layout of a record before compact records)."""
    record = read_record(path)
    record.pop("arrays", None)
    return record


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A results tree with mnist_lt's committed ce and SADE records (three seeds each), each with its
    run folder (as a local run leaves it), so that status lists them too."""
    records_dir(tmp_path).mkdir(parents=True)
    for path in [*CE, *SADE]:
        shutil.copy(path, records_dir(tmp_path))
        shutil.copy(path.with_suffix(".npz"), records_dir(tmp_path))
        (tmp_path / "runs" / path.stem).mkdir(parents=True)
    return tmp_path


def _mentions(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if name in line]


def test_every_committed_record_keeps_to_the_schema():
    paths = sorted(COMMITTED.glob("*.json"))
    assert len(paths) >= 100
    for path in paths:
        read_record(path)  # raises ValueError naming the field


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["metrics"]["test"].update(top1=24.583), "metrics.test.top1 is 24.583, outside [0, 1]"),
        (lambda r: r["metrics"]["test"].update(many=True), "metrics.test.many is True, not a finite number"),
        (lambda r: r["metrics"]["test"].update(top1=None), "metrics.test.top1 is not a number"),
        (
            lambda r: r["metrics"]["test"].update(top1="0.9"),
            "metrics.test.top1 is '0.9', not a finite number",
        ),
        (lambda r: r["metrics"]["val"].update(nll=-1.0), "metrics.val.nll is -1.0, below 0"),
        (lambda r: r.update(seed="0"), "seed is '0', not an integer"),
        (lambda r: r["config"].update(epochs=True), "config.epochs is True, not int"),
        (
            lambda r: r["config"].update(imbalance_ratio="100"),
            "config.imbalance_ratio is '100', not float | None",
        ),
        (lambda r: r.update(test_predictions=r["test_predictions"][:-1]), "holds 799 predictions for 800"),
        (lambda r: r["test_labels"].__setitem__(3, 10), "test_labels holds 10, not a class index in 0..9"),
        (lambda r: r["test_predictions"].__setitem__(0, -1), "test_predictions holds -1, not a class index"),
        (lambda r: r.pop("test_labels"), "test_labels missing, though the record has class_counts"),
        (lambda r: r["per_class_accuracy"].pop(), "per_class_accuracy is not 10 accuracies"),
        (lambda r: r["shot_groups"]["few"].append(12), "shot_groups.few holds 12"),
        (lambda r: r["cost"].update(images_seen="many"), "cost.images_seen is 'many', not a number ≥ 0"),
        (
            lambda r: r["test_adaptation"]["shifts"]["forward50"]["predictions"].pop(),
            "test_adaptation.shifts.forward50.predictions holds",
        ),
    ],
)
def test_a_record_that_breaks_the_schema_is_refused_naming_the_field(change, message):
    record = _load(SADE[0])
    check_record(record)
    assert len(record["test_labels"]) == 800 and len(record["class_counts"]) == 10
    broken = copy.deepcopy(record)
    change(broken)
    with pytest.raises(RecordInvalid, match=re.escape(message)):
        check_record(broken)


def _write(tree: Path, record: dict, name: str = "hand-edited.json") -> Path:
    path = records_dir(tree) / name
    path.write_text(json.dumps(record))
    return path


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


RESULTS_COMMANDS = [
    ["leaderboard"],
    ["leaderboard", "--test-shift"],
    ["report", "--dataset", "mnist_lt"],
    ["export"],
    ["status"],
]


@pytest.mark.parametrize("command", RESULTS_COMMANDS, ids=" ".join)
def test_every_results_command_names_a_percent_record_once_and_shows_the_others(tree, capsys, command):
    record = _load(CE[0])
    record["metrics"]["test"]["top1"] = 87.5  # a percent, not a fraction
    record["run_id"] += "-percent"
    path = _write(tree, record, f"{record['run_id']}.json")
    (tree / "runs" / record["run_id"]).mkdir()
    before = {p.name: p.read_bytes() for p in records_dir(tree).iterdir()}
    code, out, err = _run([*command, "--output", str(tree)], capsys)
    assert code == 0
    assert "Traceback" not in err
    (line,) = _mentions(err, path.name)
    assert re.search(r"metrics\.test\.top1 is 87\.5, outside \[0, 1\].*; rerun the run with --rerun", line)
    if command[0] == "leaderboard":
        assert "from 6 run records" in out and "8750" not in out
    if command[0] == "status":
        assert out.count("finished") >= 6 and "6 finished" in out
    assert {p.name: p.read_bytes() for p in records_dir(tree).iterdir()} == before


def test_a_metric_some_seeds_lack_says_over_how_many_seeds_it_is_averaged(tree, capsys):
    for path in CE[1:]:
        record = _load(path)
        record["metrics"]["test"]["many"] = None
        path_in_tree = records_dir(tree) / path.name
        path_in_tree.write_text(json.dumps(record))
    code, out, _ = _run(["leaderboard", "--output", str(tree)], capsys)
    assert code == 0
    (row,) = [line for line in out.splitlines() if line.startswith("| ce ")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    many = round(100 * _load(CE[0])["metrics"]["test"]["many"], 1)
    assert f"{many:.1f} (1 of 3 seeds)" in cells and cells[-1] == "3"


def test_a_fifo_among_the_records_is_named_and_skipped_without_blocking(tree):
    fifo = records_dir(tree) / "stuck.json"
    os.mkfifo(fifo)
    (records_dir(tree) / "folder.json").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "lt_bench.cli", "leaderboard", "--output", str(tree)],
        capture_output=True,
        text=True,
        timeout=300,  # a blocking read of the FIFO would wait forever
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr
    (line,) = _mentions(result.stderr, "stuck.json")
    assert "a FIFO (named pipe), not a regular file; rerun the run" in line
    (line,) = _mentions(result.stderr, "folder.json")
    assert "a folder, not a regular file" in line
    assert "from 6 run records" in result.stdout


def test_a_run_folder_whose_log_is_a_folder_is_named_and_the_others_still_listed(tree, capsys):
    folder = tree / "runs" / "mnist_lt-ce-lt_small_cnn-seed9-0123456789"
    (folder / "log.jsonl").mkdir(parents=True)
    (folder / "config.json").write_text('{"epochs": "twelve"}')
    code, out, err = _run(["status", "--output", str(tree)], capsys)
    assert code == 0 and "Traceback" not in err
    (line,) = _mentions(err, "log.jsonl")
    assert line.endswith("log.jsonl: a folder, not a regular file; the run writes it: rerun the same "
                         "command with --rerun, or move the run folder away")  # fmt: skip
    (line,) = _mentions(err, "config.json")
    assert "holds no epoch count" in line
    assert "epoch ?/?" in out and "6 finished" in out


def test_jobs_file_entries_of_the_wrong_types_are_named_and_skipped(tree, capsys):
    ledger = tree / "slurm" / "jobs.jsonl"
    ledger.parent.mkdir()
    good = {"job_id": "7", "run_id": CE[0].stem, "epochs": 12, "log_folder": str(tree / "slurm" / "logs")}
    entries = [{**good, "job_id": 7}, {**good, "epochs": "12"}, {**good, "run_id": None}, good]
    ledger.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    code, out, err = _run(["status", "--output", str(tree)], capsys)
    assert code == 0 and "Traceback" not in err
    for number in (1, 2, 3):
        (line,) = _mentions(err, f"jobs.jsonl line {number} ")
        assert (
            "is not a submission (needs job_id (str), run_id (str), epochs (int), log_folder (str))" in line
        )
    assert "jobs.jsonl line 4" not in err
    assert "6 finished" in out
