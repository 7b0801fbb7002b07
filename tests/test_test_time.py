"""Test-time adaptation (method hook (j)): a method adapted per test set from two augmented views of
its unlabelled images, with the shift table read from the predictions adapted to each shifted set."""

from __future__ import annotations

import numpy as np

from lt_bench.config import resolve_config
from lt_bench.leaderboard import leaderboard_markdown
from lt_bench.runner import run
from lt_bench.test_shift import SHIFTS, shift_accuracies, shifted_indices

COUNTS = [40, 20, 10, 5]


def _record(labels: np.ndarray, predictions: np.ndarray, **fields) -> dict:
    return {
        "test_labels": labels.tolist(),
        "test_predictions": predictions.tolist(),
        "class_counts": COUNTS,
        "data_seed": 0,
        **fields,
    }


def test_shift_accuracies_read_the_predictions_adapted_to_each_shifted_set():
    labels = np.repeat(np.arange(4), 30)
    wrong = (labels + 1) % 4
    assert shift_accuracies(_record(labels, wrong)) == {**{s.name: 0.0 for s in SHIFTS}, "mean": 0.0}
    # adapted to each set: right on the forward ones, wrong elsewhere; the unadapted predictions unused
    shifts = {}
    for shift in SHIFTS:
        kept = labels[shifted_indices(labels, COUNTS, shift, 0)]
        predictions = kept if "forward" in shift.name else (kept + 1) % 4
        shifts[shift.name] = {"knobs": {}, "predictions": predictions.tolist()}
    accuracies = shift_accuracies(_record(labels, wrong, test_adaptation={"knobs": {}, "shifts": shifts}))
    assert accuracies == {
        **{s.name: 1.0 if "forward" in s.name else 0.0 for s in SHIFTS},
        "mean": 5 / 11,
    }


def test_sade_adapts_to_each_shifted_test_set_and_the_shift_table_shows_it(tmp_path):
    record = run(resolve_config("sade", "digits_lt", epochs=1, threads=1, output=str(tmp_path)))
    adaptation = record["test_adaptation"]
    assert set(adaptation["shifts"]) == {shift.name for shift in SHIFTS}
    experts = ("weight_long_tailed", "weight_balanced", "weight_inverse")
    for adapted in (adaptation["knobs"], *(entry["knobs"] for entry in adaptation["shifts"].values())):
        assert set(adapted) == set(experts)
        assert abs(sum(adapted.values()) - 1.0) < 1e-6  # softmax weights
    forward, backward = (
        adaptation["shifts"]["forward50"]["knobs"],
        adaptation["shifts"]["backward50"]["knobs"],
    )
    assert forward != backward  # each set learns its own weights
    # The uniform set keeps every test image (listed by class): the same set adapts to the same weights.
    assert adaptation["shifts"]["uniform"]["knobs"] == adaptation["knobs"]
    assert shift_accuracies(record)["uniform"] == record["metrics"]["test"]["top1"]
    labels = np.asarray(record["test_labels"])
    for shift in SHIFTS:
        kept = shifted_indices(labels, record["class_counts"], shift, record["data_seed"])
        assert len(adaptation["shifts"][shift.name]["predictions"]) == len(kept)
    accuracies = shift_accuracies(record)
    table = leaderboard_markdown([record], test_shift=True)
    assert f"{100 * accuracies['backward50']:.1f}" in table
