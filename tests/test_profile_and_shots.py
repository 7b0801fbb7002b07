"""The long-tail profile, shot groups at their boundaries, and the metrics on a hand-made example."""

import math

import numpy as np
import pytest
import torch

from lt_bench.data import ShotRule, draw_per_class, long_tailed_counts
from lt_bench.evaluation import classification_metrics, shot_accuracies


def test_cifar10_lt_counts_at_ratio_100():
    assert long_tailed_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


@pytest.mark.parametrize(
    "max_count, classes, ratio, total",
    [
        (5000, 10, 100, 12406),
        (5000, 10, 50, 13996),
        (5000, 10, 10, 20431),
        (5000, 10, 200, 11203),
        (500, 100, 100, 10847),
        (500, 100, 50, 12608),
        (500, 100, 10, 19573),
        (500, 100, 200, 9502),
    ],
)
def test_cifar_lt_totals(max_count, classes, ratio, total):
    assert sum(long_tailed_counts(max_count, classes, ratio)) == total


def test_ratio_below_one_is_refused():
    with pytest.raises(ValueError):
        long_tailed_counts(100, 10, 0.5)


def test_draw_per_class_is_seeded_sorted_and_respects_exclusions():
    labels = np.repeat(np.arange(3), 10)
    first = draw_per_class(labels, [5, 3, 1], np.random.default_rng(7))
    again = draw_per_class(labels, [5, 3, 1], np.random.default_rng(7))
    assert np.array_equal(first, again)
    assert np.bincount(labels[first]).tolist() == [5, 3, 1]
    rest = draw_per_class(labels, [5, 7, 9], np.random.default_rng(1), exclude=first)
    assert not set(first) & set(rest)


@pytest.mark.parametrize(
    "count, group", [(101, "many"), (100, "medium"), (20, "medium"), (19, "few"), (0, "few")]
)
def test_shot_rule_boundaries(count, group):
    assert ShotRule().group(count) == group


def test_empty_shot_group_is_missing_not_zero():
    accuracies = shot_accuracies([1.0, 0.5], [500, 300], ShotRule())
    assert accuracies == {"many": 0.75, "medium": None, "few": None}


def test_metrics_on_a_hand_made_example():
    # 3 classes with training counts 200 (many), 50 (medium), 5 (few); four test images.
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 4.0]])
    labels = torch.tensor([0, 1, 1, 2])  # predictions 0, 1, 0, 2
    metrics = classification_metrics(logits, labels, [200, 50, 5], ShotRule())
    assert metrics["top1"] == 0.75
    assert metrics["per_class_accuracy"] == [1.0, 0.5, 1.0]
    assert (metrics["many"], metrics["medium"], metrics["few"]) == (1.0, 0.5, 1.0)
    assert metrics["balanced_accuracy"] == pytest.approx(2.5 / 3)
    assert metrics["top5"] is None  # only defined for more than five classes
    # F1: class 0 tp 1 fp 1 fn 0 → 2/3; class 1 tp 1 fn 1 → 2/3; class 2 → 1
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    # NLL: mean of −log softmax of the true class
    expected_nll = np.mean(
        [
            -2 + math.log(math.e**2 + math.e + 1),
            -3 + math.log(math.e**3 + 2),
            0 + math.log(math.e + 2),
            -4 + math.log(math.e**4 + 2),
        ]
    )
    assert metrics["nll"] == pytest.approx(expected_nll)
    # ECE: confidences of the four predictions and whether they were right, 15 equal bins
    confidences = [
        math.e**2 / (math.e**2 + math.e + 1),
        math.e**3 / (math.e**3 + 2),
        math.e / (math.e + 2),
        math.e**4 / (math.e**4 + 2),
    ]
    correct = [1, 1, 0, 1]
    bins: dict[int, list[int]] = {}
    for index, confidence in enumerate(confidences):
        bins.setdefault(min(int(confidence * 15), 14), []).append(index)
    expected_ece = sum(
        len(members)
        / 4
        * abs(np.mean([correct[i] for i in members]) - np.mean([confidences[i] for i in members]))
        for members in bins.values()
    )
    assert metrics["ece"] == pytest.approx(expected_ece)


def test_top5_with_more_than_five_classes():
    logits = torch.arange(7.0).repeat(2, 1)  # ranking 6, 5, 4, 3, 2 for both images
    metrics = classification_metrics(logits, torch.tensor([2, 1]), [200] * 7, ShotRule())
    assert metrics["top1"] == 0.0 and metrics["top5"] == 0.5
