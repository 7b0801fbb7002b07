"""The numbers behind each report figure, from a variant's run records (means over seeds)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lt_bench.evaluation import SHOT_GROUPS, expected_calibration_error, mean_present
from lt_bench.report.runs import Record, Variant

# Validation accuracies recorded for each searched knob value (runner.evaluate), in plotting order.
KNOB_CURVE_METRICS = ("many", "medium", "few", "top1", "balanced_accuracy")


@dataclass(frozen=True)
class PerClassSeries:
    """Test accuracy per class (mean over seeds); classes by training count, largest first."""

    classes: list[int]
    counts: list[int]
    accuracy: list[float | None]


def per_class_series(variant: Variant) -> PerClassSeries:
    counts = variant.runs[0]["class_counts"]
    classes = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    accuracy = [mean_present([run["per_class_accuracy"][c] for run in variant.runs]) for c in classes]
    return PerClassSeries(classes, [counts[c] for c in classes], accuracy)


@dataclass(frozen=True)
class ShotBand:
    """The span of training counts shaded for one shot group; edges halfway (log) between groups."""

    group: str
    low: float
    high: float
    classes: int


def shot_bands(class_counts: Sequence[int], shot_groups: dict[str, list[int]]) -> list[ShotBand]:
    """Bands of the non-empty shot groups, most images first, each covering its classes' counts."""
    spans = [
        (
            group,
            min(class_counts[c] for c in shot_groups[group]),
            max(class_counts[c] for c in shot_groups[group]),
            len(shot_groups[group]),
        )
        for group in SHOT_GROUPS
        if shot_groups.get(group)
    ]
    bands = []
    for index, (group, smallest, largest, size) in enumerate(spans):
        high = largest * 1.5 if index == 0 else math.sqrt(largest * spans[index - 1][1])
        low = smallest / 1.5 if index == len(spans) - 1 else math.sqrt(smallest * spans[index + 1][2])
        bands.append(ShotBand(group, low, high, size))
    return bands


@dataclass(frozen=True)
class Calibration:
    """Reliability bins pooled over seeds and the ECE of the pooled bins."""

    count: list[int]
    confidence: list[float | None]
    accuracy: list[float | None]
    ece: float


def pooled_calibration(variant: Variant) -> Calibration:
    """Images of each confidence bin summed over runs; confidence and accuracy image-weighted."""
    bins = [run["calibration"] for run in variant.runs]
    count = [sum(values) for values in zip(*(b["count"] for b in bins), strict=True)]

    def weighted(key: str) -> list[float | None]:
        return [
            None if total == 0 else sum(b["count"][i] * b[key][i] for b in bins if b["count"][i]) / total
            for i, total in enumerate(count)
        ]

    pooled = {
        "count": count,
        "confidence": weighted("confidence"),
        "accuracy": weighted("accuracy"),
    }
    return Calibration(count, pooled["confidence"], pooled["accuracy"], expected_calibration_error(pooled))


@dataclass(frozen=True)
class KnobCurve:
    """Validation accuracy against one searched test-time knob (mean over seeds); each choice."""

    knob: str
    values: list[float]
    metrics: dict[str, list[float | None]]
    selected: list[float]


def knob_curve(variant: Variant) -> KnobCurve | None:
    """The curve of the variant's single searched knob; None when no run searched exactly one."""
    searched = [run for run in variant.runs if _searched_knob(run) is not None]
    if not searched:
        return None
    knob = _searched_knob(searched[0])
    by_value: dict[float, list[dict]] = {}
    for run in searched:
        for entry in run["knobs"]["validation"]:
            by_value.setdefault(entry["knobs"][knob], []).append(entry)
    values = sorted(by_value)
    metrics = {
        name: [mean_present([entry[name] for entry in by_value[value]]) for value in values]
        for name in KNOB_CURVE_METRICS
    }
    selected = [run["knobs"]["selected"][knob] for run in searched]
    return KnobCurve(knob, values, metrics, selected)


def _searched_knob(run: Record) -> str | None:
    searched = [name for name, values in run["knobs"]["candidates"].items() if len(values) > 1]
    return searched[0] if len(searched) == 1 else None


@dataclass(frozen=True)
class TrainingCurve:
    """Per epoch, the mean over seeds of the training loss and top-1, and of the validation balanced
    accuracy at the epochs where it was measured."""

    epochs: list[int]
    loss: list[float]
    train_top1: list[float]
    val_epochs: list[int]
    val_balanced_accuracy: list[float]


def training_curve(variant: Variant) -> TrainingCurve | None:
    """The variant's curve from its records; None when no record has one (older lt-bench, or a stage
    that trains nothing)."""
    by_epoch: dict[int, list[dict]] = {}
    for run in variant.runs:
        for point in run.get("curve") or []:
            by_epoch.setdefault(point["epoch"], []).append(point)
    if not by_epoch:
        return None
    epochs = sorted(by_epoch)

    def mean(epoch: int, name: str) -> float | None:
        return mean_present([point.get(name) for point in by_epoch[epoch]])

    validated = [epoch for epoch in epochs if mean(epoch, "val_balanced_accuracy") is not None]
    return TrainingCurve(
        epochs,
        [mean(epoch, "loss") for epoch in epochs],
        [mean(epoch, "train_top1") for epoch in epochs],
        validated,
        [mean(epoch, "val_balanced_accuracy") for epoch in validated],
    )


@dataclass(frozen=True)
class CostPoint:
    """A variant's mean test top-1 against its training compute and device-hours (means over seeds)."""

    top1: float
    training_flops: float  # forward FLOPs per image × images seen in training, all stages
    device_hours: float


def cost_point(variant: Variant) -> CostPoint | None:
    """None when a run lacks the cost block (records made before cost accounting)."""
    costs = [run.get("cost") for run in variant.runs]
    if any(cost is None for cost in costs):
        return None
    return CostPoint(
        sum(run["metrics"]["test"]["top1"] for run in variant.runs) / len(variant.runs),
        sum(cost["flops_per_image"] * cost["images_seen"] for cost in costs) / len(costs),
        sum(cost["device_hours"] for cost in costs) / len(costs),
    )


def trial_scores(study_folder: Path) -> list[tuple[int, float | None]]:
    """(trial number, validation balanced accuracy mean over its seeds; None if pruned) of every
    trial with a record in a study's results tree, by trial number."""
    from lt_bench.records import iter_records

    by_trial: dict[int, list[float | None]] = {}
    for record in iter_records(study_folder, finished_only=False):
        trial = record.get("trial")
        if trial is None or trial["study"] != study_folder.name:  # e.g. a second stage's first stage
            continue
        score = record["metrics"]["val"]["balanced_accuracy"] if record["status"] == "finished" else None
        by_trial.setdefault(trial["number"], []).append(score)
    return [
        (number, None if None in scores else sum(scores) / len(scores))
        for number, scores in sorted(by_trial.items())
    ]
