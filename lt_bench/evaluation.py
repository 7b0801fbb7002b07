"""Metrics on logits: top-1/top-5, many/medium/few, per-class accuracy, macro-F1, ECE and NLL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from lt_bench.data.base import ShotRule

SHOT_GROUPS = ("many", "medium", "few")


def per_class_accuracy(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> list[float | None]:
    """Accuracy of each class over its evaluation images; None for a class with no images."""
    correct = torch.bincount(labels[predictions == labels], minlength=num_classes).double()
    total = torch.bincount(labels, minlength=num_classes).double()
    return [None if total[c] == 0 else float(correct[c] / total[c]) for c in range(num_classes)]


def shot_accuracies(
    class_accuracy: Sequence[float | None], class_counts: Sequence[int], shot_rule: ShotRule
) -> dict[str, float | None]:
    """Mean per-class accuracy within each group of training counts; None for an empty group."""
    result: dict[str, float | None] = {}
    for group, classes in shot_rule.groups(class_counts).items():
        values = [class_accuracy[c] for c in classes if class_accuracy[c] is not None]
        result[group] = sum(values) / len(values) if values else None
    return result


def macro_f1(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Unweighted mean F1 over the classes that occur in the labels or the predictions (as sklearn)."""
    true_positive = torch.bincount(labels[predictions == labels], minlength=num_classes).double()
    predicted = torch.bincount(predictions, minlength=num_classes).double()
    actual = torch.bincount(labels, minlength=num_classes).double()
    present = (predicted + actual) > 0
    f1 = 2 * true_positive / (predicted + actual).clamp(min=1)
    return float(f1[present].mean())


def calibration_bins(
    probabilities: torch.Tensor, labels: torch.Tensor, num_bins: int = 15
) -> dict[str, list]:
    """Equal-width confidence bins: count, mean confidence and accuracy per bin (None when empty)."""
    confidence, predictions = probabilities.max(dim=1)
    correct = (predictions == labels).double()
    bins = torch.clamp((confidence * num_bins).long(), max=num_bins - 1)
    counts = torch.bincount(bins, minlength=num_bins)
    confidence_sum = torch.bincount(bins, weights=confidence.double(), minlength=num_bins)
    correct_sum = torch.bincount(bins, weights=correct, minlength=num_bins)
    return {
        "count": counts.tolist(),
        "confidence": [None if n == 0 else float(s / n) for n, s in zip(counts, confidence_sum, strict=True)],
        "accuracy": [None if n == 0 else float(s / n) for n, s in zip(counts, correct_sum, strict=True)],
    }


def expected_calibration_error(bins: dict[str, list]) -> float:
    """ECE = Σ_b (n_b / N) · |accuracy_b − confidence_b| (Guo et al. 2017)."""
    total = sum(bins["count"])
    return sum(
        n / total * abs(accuracy - confidence)
        for n, accuracy, confidence in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
        if n
    )


def classification_metrics(
    logits: torch.Tensor, labels: torch.Tensor, class_counts: Sequence[int], shot_rule: ShotRule
) -> dict[str, Any]:
    """Every metric of a record for one split; accuracies are fractions in [0, 1]."""
    logits = logits.double()
    num_classes = logits.shape[1]
    predictions = logits.argmax(dim=1)
    probabilities = logits.softmax(dim=1)
    class_accuracy = per_class_accuracy(predictions, labels, num_classes)
    bins = calibration_bins(probabilities, labels)
    metrics: dict[str, Any] = {
        "top1": float((predictions == labels).double().mean()),
        "top5": None,
        **shot_accuracies(class_accuracy, class_counts, shot_rule),
        "balanced_accuracy": mean_present(class_accuracy),
        "macro_f1": macro_f1(predictions, labels, num_classes),
        "ece": expected_calibration_error(bins),
        "nll": float(F.cross_entropy(logits, labels)),
        "per_class_accuracy": class_accuracy,
        "calibration": bins,
    }
    if num_classes > 5:
        top5 = logits.topk(5, dim=1).indices
        metrics["top5"] = float((top5 == labels[:, None]).any(dim=1).double().mean())
    return metrics


def knob_scores(
    logits: torch.Tensor, labels: torch.Tensor, class_counts: Sequence[int], shot_rule: ShotRule
) -> dict[str, float | None]:
    """What a test-time knob candidate is judged and listed by: balanced accuracy, top-1 and
    many/medium/few, the same numbers `classification_metrics` gives, without its softmax,
    calibration, F1 and NLL (the full suite runs once, on the chosen knobs)."""
    predictions = logits.argmax(dim=1)
    class_accuracy = per_class_accuracy(predictions, labels, logits.shape[1])
    return {
        "balanced_accuracy": mean_present(class_accuracy),
        "top1": float((predictions == labels).double().mean()),
        **shot_accuracies(class_accuracy, class_counts, shot_rule),
    }


def mean_present(values: Sequence[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
