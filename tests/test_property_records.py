"""Property: a committed record mutated at random (a field dropped, truncated or retyped, or the file
cut short) never makes a results command end in a traceback; it exits 0 or 2, and the untouched
records are still shown."""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lt_bench.cli import main
from lt_bench.records import read_record

COMMITTED = Path(__file__).resolve().parent.parent / "results" / "records"
# Two seeds of ce and one of SADE, whose record also holds its test-time adaptation per label shift.
SOURCES = [
    *sorted(COMMITTED.glob("mnist_lt-ce-lt_small_cnn-seed[01]-*.json")),
    *sorted(COMMITTED.glob("mnist_lt-sade-lt_small_cnn-seed0-*.json")),
]
RECORDS = [{k: v for k, v in read_record(path).items() if k != "arrays"} for path in SOURCES]  # inline
REPLACEMENTS = ["", "x", True, False, None, -1, 0, 1e9, 2**70, [], {}, [None], {"x": 1}]


def _field_paths(value: Any, prefix: tuple = (), depth: int = 4) -> list[tuple]:
    """Every key path into nested objects (lists are leaves), to `depth` keys."""
    if not isinstance(value, dict) or depth == 0:
        return []
    paths = []
    for key, item in value.items():
        paths.append((*prefix, key))
        paths += _field_paths(item, (*prefix, key), depth - 1)
    return paths


def _mutated(record: dict, path: tuple, operation: str, replacement: Any, keep: float) -> dict:
    record = copy.deepcopy(record)
    *parents, last = path
    holder = record
    for key in parents:
        holder = holder[key]
    if operation == "drop":
        del holder[last]
    elif operation == "truncate" and isinstance(holder[last], (list, str)):
        holder[last] = holder[last][: int(len(holder[last]) * keep)]
    else:
        holder[last] = replacement
    return record


@st.composite
def mutations(draw) -> tuple[int, bytes]:
    """Which record is mutated, and the bytes of its file afterwards."""
    index = draw(st.integers(0, len(RECORDS) - 1))
    record = RECORDS[index]
    operation = draw(st.sampled_from(["drop", "truncate", "retype", "cut file"]))
    keep = draw(st.floats(0, 0.99))
    if operation == "cut file":
        text = json.dumps(record).encode()
        return index, text[: int(len(text) * keep)]
    path = draw(st.sampled_from(_field_paths(record)))
    mutated = _mutated(record, path, operation, draw(st.sampled_from(REPLACEMENTS)), keep)
    return index, json.dumps(mutated).encode()


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation=mutations())
def test_a_mutated_record_never_ends_a_results_command_in_a_traceback(mutation):
    index, data = mutation
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder)
        (output / "records").mkdir()
        for position, (source, record) in enumerate(zip(SOURCES, RECORDS, strict=True)):
            target = output / "records" / source.name
            if position == index:
                target.write_bytes(data)
            else:
                shutil.copy(source, target)
                shutil.copy(source.with_suffix(".npz"), target.with_suffix(".npz"))
            (output / "runs" / record["run_id"]).mkdir(parents=True)
        untouched = [record["run_id"] for position, record in enumerate(RECORDS) if position != index]
        for command in (
            ["leaderboard"],
            ["leaderboard", "--test-shift"],
            ["status"],
            ["export"],
            ["report", "--dataset", "mnist_lt"],
        ):
            code, out, err = _run([*command, "--output", str(output)])
            assert code in (0, 2), (command, err)
            assert "Traceback" not in err
            if command[0] == "leaderboard":
                shown = int(re.search(r"from (\d+) run records", out).group(1))
                assert shown >= len(untouched)
            if command == ["status"]:
                assert all(re.search(rf"{run_id}\s+finished", out) for run_id in untouched), out
            if command == ["export"]:
                with open(output / "runs.csv", newline="") as handle:
                    exported = {row["run_id"] for row in csv.DictReader(handle)}
                assert set(untouched) <= exported
