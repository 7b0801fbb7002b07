"""Compact records: the JSON keeps configuration, metrics, knobs, cost and curves; per-image and
per-class arrays lie in a `.npz` beside it. Older records (arrays inline) still load, `lt-bench
compact` rewrites them deterministically, and a missing or swapped arrays file is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lt_bench.cli import main
from lt_bench.records import iter_records, read_record, write_record

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "records"


def _inline_records(tmp_path: Path, pattern: str) -> Path:
    """A results tree holding committed records in the older inline layout."""
    output = tmp_path / "results"
    (output / "records").mkdir(parents=True)
    for path in sorted(COMMITTED.glob(pattern)):
        record = read_record(path)  # arrays merged in, whichever layout is committed
        record.pop("arrays", None)
        (output / "records" / path.name).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return output


def test_a_written_record_keeps_its_arrays_beside_it_and_reads_back_equal(tmp_path):
    original = read_record(sorted(COMMITTED.glob("mnist_lt-sade-*seed0*.json"))[0])
    original.pop("arrays", None)
    path = write_record(tmp_path, original)
    on_disk = json.loads(path.read_text())
    assert not {"test_labels", "test_predictions", "per_class_accuracy", "class_counts"} & on_disk.keys()
    assert on_disk["arrays"]["file"] == path.with_suffix(".npz").name
    assert all("predictions" not in shift for shift in on_disk["test_adaptation"]["shifts"].values())
    again = read_record(path)
    again.pop("arrays")
    assert again == original
    assert "test_labels" not in read_record(path, arrays=False)


def test_compact_rewrites_inline_records_the_same_way_every_time_and_boards_do_not_change(tmp_path, capsys):
    output = _inline_records(tmp_path, "mnist_lt-*seed0*.json")
    assert main(["leaderboard", "--test-shift", "--output", str(output)]) == 0
    before = (output / "leaderboard-test-shift.md").read_text()
    inline = {path.name: read_record(path) for path in (output / "records").glob("*.json")}

    assert main(["compact", "--output", str(output)]) == 0
    assert f"{len(inline)} record(s)" in capsys.readouterr().out
    first = {path.name: path.read_bytes() for path in (output / "records").iterdir()}
    assert len(first) == 2 * len(inline)  # each JSON and its .npz
    for name, record in inline.items():
        compacted = read_record(output / "records" / name)
        compacted.pop("arrays")
        assert compacted == record

    shutil.rmtree(output / "records")
    output = _inline_records(tmp_path / "again", "mnist_lt-*seed0*.json")
    assert main(["compact", "--output", str(output)]) == 0
    assert {path.name: path.read_bytes() for path in (output / "records").iterdir()} == first
    assert main(["compact", "--output", str(output)]) == 0
    assert "0 record(s)" in capsys.readouterr().out.splitlines()[-1]

    assert main(["leaderboard", "--test-shift", "--output", str(output)]) == 0
    assert (output / "leaderboard-test-shift.md").read_text() == before


@pytest.mark.parametrize("damage", ["missing", "swapped"])
def test_a_record_whose_arrays_file_is_missing_or_swapped_is_named_and_skipped(tmp_path, damage, capsys):
    output = _inline_records(tmp_path, "mnist_lt-ce-*.json")
    assert main(["compact", "--output", str(output)]) == 0
    sidecars = sorted((output / "records").glob("*.npz"))
    if damage == "missing":
        sidecars[0].unlink()
    else:
        sidecars[0].write_bytes(sidecars[1].read_bytes())
    with pytest.warns(UserWarning, match=sidecars[0].name):
        kept = list(iter_records(output, per_image=True))
    assert len(kept) == len(sidecars) - 1
    assert len(list(iter_records(output, arrays=False))) == len(sidecars)  # the leaderboard reads none
    capsys.readouterr()
    assert main(["leaderboard", "--test-shift", "--output", str(output)]) == 0
    assert "--rerun" in capsys.readouterr().err
