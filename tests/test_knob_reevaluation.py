"""Fixed test-time knobs on a finished configuration re-evaluate its final weights instead of training
(training does not depend on them); outputs that are not finite numbers never make a `finished` record."""

from __future__ import annotations

from pathlib import Path

import pytest

from lt_bench.cli import main
from lt_bench.config import resolve_config
from lt_bench.records import iter_records, read_record
from lt_bench.runner import RunPaths, run

RESULT_FIELDS = ("metrics", "per_class_accuracy", "calibration", "knobs", "test_predictions")


def tde(output: Path, **knobs: float):
    return resolve_config("causal_tde", "digits_lt", epochs=2, output=str(output), threads=1, knobs=knobs)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("knob-free")
    run(tde(output))
    return output


def test_a_knob_on_a_finished_run_evaluates_its_final_weights_without_training(finished, tmp_path):
    knob_free = RunPaths.of(tde(finished))
    written = (knob_free.checkpoint.stat().st_mtime_ns, knob_free.log.read_text())
    reevaluated = run(tde(finished, alpha=2.0))
    assert reevaluated["evaluated_from"] == tde(finished).run_id
    assert reevaluated["run_id"] != tde(finished).run_id  # knobs are part of the identity
    assert not RunPaths.of(tde(finished, alpha=2.0)).folder.exists()  # nothing trained for it
    assert (knob_free.checkpoint.stat().st_mtime_ns, knob_free.log.read_text()) == written

    from_scratch = run(tde(tmp_path, alpha=2.0))  # no knob-free run there: trains with the knob fixed
    assert (
        from_scratch["evaluated_from"] is None and RunPaths.of(tde(tmp_path, alpha=2.0)).checkpoint.exists()
    )
    assert reevaluated["knobs"]["selected"] == {"alpha": 2.0}
    for field in RESULT_FIELDS:
        assert reevaluated[field] == from_scratch[field], field
    knob_free_record = read_record(knob_free.record)
    assert knob_free_record["evaluated_from"] is None
    assert reevaluated["metrics"] != knob_free_record["metrics"]  # α = 2 is not what validation chose


def test_non_finite_outputs_make_a_failed_record_and_one_line(finished, capsys):
    # α = 1e300 overflows float32: the TDE logits, and every metric of them, are not finite numbers.
    argv = ["run", "--method", "causal_tde", "--dataset", "digits_lt", "--epochs", "2", "--threads", "1",
            "--knob", "alpha=1e300", "--output", str(finished)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("lt-bench: error: ")]
    assert line == (
        "lt-bench: error: the val logits with alpha=1e+300 are not finite; lower --lr or pass other --knob "
        "values"
    )
    record = read_record(RunPaths.of(tde(finished, alpha=1e300)).record)
    assert record["status"] == "failed" and record["metrics"] == {}
    assert record["error"] == "the val logits with alpha=1e+300 are not finite"
    assert tde(finished, alpha=1e300).run_id not in {r["run_id"] for r in iter_records(finished)}
