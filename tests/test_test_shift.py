"""Test-agnostic evaluation (LADE / SADE): the shifted per-class counts, the seeded subsamples, and
`lt-bench leaderboard --test-shift` on the committed mnist_lt records, without retraining."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from lt_bench.cli import main
from lt_bench.leaderboard import leaderboard_markdown
from lt_bench.records import iter_records
from lt_bench.test_shift import SHIFTS, LabelShift, shift_accuracies, shifted_counts, shifted_indices

RESULTS = Path(__file__).resolve().parents[1] / "results"


def committed_records(dataset: str | None = None) -> list[dict]:
    """The committed run records, of `dataset` only when given."""
    return [r for r in iter_records(RESULTS) if dataset in (None, r["dataset"])]


MNIST_COUNTS = [400, 239, 143, 86, 51, 30, 18, 11, 6, 4]  # mnist_lt's training counts


def test_the_eleven_distributions_in_the_papers_order():
    names = [shift.name for shift in SHIFTS]
    assert names == [
        *(f"forward{r}" for r in (50, 25, 10, 5, 2)),
        "uniform",
        *(f"backward{r}" for r in (2, 5, 10, 25, 50)),
    ]


def test_forward_and_backward_counts_follow_the_training_order():
    # int(80 · 50^(−r/9)) for ranks r = 0 … 9: 80, 51.7, 33.5, 21.6, 14.1, 9.1, 5.9, 3.8, 2.4, 1.6
    assert shifted_counts([80] * 10, MNIST_COUNTS, LabelShift(50)) == [80, 51, 33, 21, 14, 9, 5, 3, 2, 1]
    assert shifted_counts([80] * 10, MNIST_COUNTS, LabelShift(50, backward=True)) == [
        1, 2, 3, 5, 9, 14, 21, 33, 51, 80,
    ]  # fmt: skip
    assert shifted_counts([80] * 10, MNIST_COUNTS, LabelShift(1)) == [80] * 10
    # Ranks come from the training counts, not the class indices: here class 2 is the head.
    assert shifted_counts([10, 10, 10], [5, 1, 9], LabelShift(4)) == [5, 2, 10]  # 10 · 4^(−1/2) = 5
    assert shifted_counts([10, 10, 10], [5, 1, 9], LabelShift(4, backward=True)) == [5, 10, 2]


def test_sades_cifar100_forward50_counts():
    """SADE's `get_img_num_per_cls` with img_max = 10,000 / 100 and imb_factor 0.02."""
    counts = shifted_counts([100] * 100, list(range(500, 0, -5)), LabelShift(50))
    assert counts == [int(100 * 0.02 ** (c / 99)) for c in range(100)]
    assert (counts[0], counts[-1]) == (100, 2)


def test_subsamples_are_seeded_by_the_data_seed_and_drawn_within_each_class():
    labels = np.repeat(np.arange(10), 80)[np.random.default_rng(1).permutation(800)]
    first = shifted_indices(labels, MNIST_COUNTS, LabelShift(10), data_seed=0)
    assert np.array_equal(first, shifted_indices(labels, MNIST_COUNTS, LabelShift(10), data_seed=0))
    assert not np.array_equal(first, shifted_indices(labels, MNIST_COUNTS, LabelShift(10), data_seed=1))
    kept = np.bincount(labels[first], minlength=10).tolist()
    assert kept == shifted_counts([80] * 10, MNIST_COUNTS, LabelShift(10))
    assert len(set(first.tolist())) == len(first)


def test_accuracy_on_a_shift_counts_the_kept_images():
    """Every image of classes 0 and 1 right, every one of class 2 wrong: the shifted top-1 follows
    from the per-class counts alone, whichever images the draw keeps."""
    labels = np.repeat(np.arange(3), 4)
    predictions = np.where(labels == 2, 0, labels)
    record = {
        "test_labels": labels.tolist(),
        "test_predictions": predictions.tolist(),
        "class_counts": [50, 20, 5],
        "data_seed": 0,
    }
    accuracies = shift_accuracies(record)
    assert accuracies["uniform"] == pytest.approx(8 / 12)
    assert accuracies["forward2"] == pytest.approx(6 / 8)  # int(4 · 2^(−r/2)): 4, 2, 2
    assert accuracies["backward2"] == pytest.approx(4 / 8)  # 2, 2, 4
    assert accuracies["forward50"] == 1.0  # 4, 0, 0
    assert accuracies["backward50"] == 0.0  # 0, 0, 4
    assert accuracies["mean"] == pytest.approx(np.mean([accuracies[s.name] for s in SHIFTS]))


def test_uniform_is_each_committed_records_top1_and_forward_favours_ce():
    records = committed_records()
    if not records:
        pytest.skip("no committed run records")
    for record in records:
        assert shift_accuracies(record)["uniform"] == record["metrics"]["test"]["top1"]
    ce = [shift_accuracies(r) for r in records if r["method"] == "ce" and r["dataset"] == "mnist_lt"]
    assert ce and all(a["forward50"] > a["uniform"] > a["backward50"] for a in ce)  # CE favours the head


def _cells(markdown: str) -> list[list[str]]:
    rows = [line for line in markdown.splitlines() if line.startswith("|") and not line.startswith("|:")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_leaderboard_test_shift_on_the_committed_records(tmp_path, capsys):
    records = committed_records("mnist_lt")
    if not records:
        pytest.skip("no committed run records")
    output = tmp_path / "results"
    (output / "records").mkdir(parents=True)
    for record in records:
        inline = {key: value for key, value in record.items() if key != "arrays"}  # arrays in the JSON
        (output / "records" / f"{record['run_id']}.json").write_text(json.dumps(inline))
    assert main(["leaderboard", "--test-shift", "--output", str(output)]) == 0
    page = (output / "leaderboard-test-shift.md").read_text()
    assert capsys.readouterr().out.startswith(page)
    assert not (output / "leaderboard.md").exists()
    header, *rows = _cells(page)
    assert header[3:] == [*(s.title for s in SHIFTS), "Mean", "Seeds"]
    board_header, *board_rows = _cells(leaderboard_markdown(records))
    overall = {row[0]: row[board_header.index("Overall")] for row in board_rows}
    assert len(rows) == len(overall) == len({r["method"] for r in records})
    for row in rows:
        assert row[header.index("uniform")] == overall[row[0]]
    means = [float(re.match(r"[\d.]+", row[header.index("Mean")]).group()) for row in rows]
    assert means == sorted(means, reverse=True)


def test_the_same_subsample_for_every_method_of_a_data_seed():
    records = [r for r in committed_records("mnist_lt") if r["seed"] == 0]
    if len(records) < 2:
        pytest.skip("no committed run records")
    first, second = records[0], records[1]
    labels = np.asarray(first["test_labels"])
    assert np.array_equal(labels, second["test_labels"])
    for shift in SHIFTS:
        assert np.array_equal(
            shifted_indices(labels, first["class_counts"], shift, first["data_seed"]),
            shifted_indices(np.asarray(second["test_labels"]), second["class_counts"], shift, 0),
        )


def test_the_committed_test_shift_leaderboard_regenerates_from_the_committed_records():
    records = committed_records()
    if not records:
        pytest.skip("no committed run records")
    committed = RESULTS / "leaderboard-test-shift.md"
    assert committed.exists(), (
        "results/leaderboard-test-shift.md is missing: run `lt-bench leaderboard --test-shift`"
    )
    assert leaderboard_markdown(records, test_shift=True) == committed.read_text()
