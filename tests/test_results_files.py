"""The files of a results tree: a mistyped or read-only destination for `lt-bench leaderboard`, a
misspelt `lt-bench report --dataset`, and written files that a group sharing the tree can read."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from lt_bench.cli import main
from lt_bench.records import read_record, write_record

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "records"


def _inline(record_file: Path) -> dict:
    """A committed record with its arrays inline, as a run hands it to write_record."""
    return {key: value for key, value in read_record(record_file).items() if key != "arrays"}


@pytest.fixture
def results(tmp_path) -> Path:
    """A results tree holding one committed mnist_lt record and one of a dataset no registry knows."""
    (record_file,) = COMMITTED.glob("mnist_lt-ce-lt_small_cnn-seed0-*.json")
    record = _inline(record_file)
    write_record(tmp_path, record)
    other = {**record, "dataset": "herbarium_lt", "run_id": "herbarium-ce"}
    write_record(tmp_path, {**other, "config": {**record["config"], "dataset": "herbarium_lt"}})
    return tmp_path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("lt-bench: error: ")
    return line


@pytest.mark.parametrize(
    "make", [lambda folder: None, lambda folder: folder.mkdir()], ids=["no folder", "no records"]
)
def test_a_mistyped_output_is_one_line_and_creates_nothing(tmp_path, capsys, make):
    typo = tmp_path / "resutls"
    make(typo)
    before = sorted(tmp_path.rglob("*"))
    assert main(["leaderboard", "--output", str(typo)]) == 2
    assert _error_line(capsys).startswith(f"lt-bench: error: no run records under {typo}; pass as --output")
    assert sorted(tmp_path.rglob("*")) == before


@pytest.fixture
def read_only(tmp_path) -> Path:
    """A folder nobody can write into: mode 0555, and for root (whom modes do not stop) immutable."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    immutable = os.geteuid() == 0 and shutil.which("chattr") is not None
    if immutable and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: nothing is read-only")
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    folder.chmod(0o755)


def test_a_read_only_destination_is_one_line_naming_write(results, read_only, capsys):
    target = read_only / "leaderboard.md"
    assert main(["leaderboard", "--output", str(results), "--write", str(target)]) == 2
    line = _error_line(capsys)
    assert f"cannot write the leaderboard to {target}" in line and "pass --write FILE" in line
    assert list(read_only.iterdir()) == []


def test_a_misspelt_report_dataset_suggests_recorded_and_registered_names(results, capsys):
    assert main(["report", "--dataset", "mnist_ltt", "--output", str(results)]) == 2
    line = _error_line(capsys)
    assert "unknown dataset 'mnist_ltt': no run records of it under" in line
    assert (
        "Did you mean 'mnist_lt'" in line and "Datasets with records there: herbarium_lt, mnist_lt." in line
    )
    assert main(["report", "--dataset", "herbarium", "--output", str(results)]) == 2
    assert "Did you mean 'herbarium_lt'?" in _error_line(capsys)  # known only from the records
    assert main(["report", "--dataset", "digits_lt", "--output", str(results)]) == 2
    line = _error_line(capsys)  # registered, just not run here: no guess
    assert "no finished run records of dataset 'digits_lt'" in line and "Did you mean" not in line
    assert not (results / "report").exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_written_files_respect_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        results = tmp_path / "shared-results"
        write_record(results, _inline(next(COMMITTED.glob("*.json"))))
        assert main(["leaderboard", "--output", str(results)]) == 0
        written = [results / "leaderboard.md", *sorted((results / "records").iterdir())]
        plain = results / "plain"
        plain.write_text("")  # what open() gives
    finally:
        os.umask(previous)
    assert stat.S_IMODE(plain.stat().st_mode) == mode
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in written} == {
        path.name: mode for path in written
    }
