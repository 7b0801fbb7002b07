"""The paired bootstrap on constructed pairs of runs whose true differences are known by construction."""

import math

import numpy as np
import pytest

from lt_bench.report.bootstrap import PairedRun, paired_bootstrap

NO_GROUPS: dict[str, list[int]] = {}


def constructed(per_class: int, method_right: float, baseline_right: float, classes: int = 1) -> PairedRun:
    """`per_class` images per class; the method is right on the first `method_right` share of each
    class, the baseline on the first `baseline_right` share (so both are right on the smaller one)."""
    labels = np.repeat(np.arange(classes), per_class)
    position = np.tile(np.arange(per_class), classes) / per_class
    return PairedRun(labels, position < method_right, position < baseline_right)


def width(pairs, **kwargs) -> float:
    interval = paired_bootstrap(pairs, NO_GROUPS, num_classes=pairs[0].labels.max() + 1, **kwargs)["top1"]
    return interval.high - interval.low


def test_interval_of_a_known_difference_covers_it_and_shrinks_with_more_images():
    small = paired_bootstrap([constructed(200, 0.7, 0.6)], NO_GROUPS, num_classes=1)["top1"]
    large = paired_bootstrap([constructed(800, 0.7, 0.6)], NO_GROUPS, num_classes=1)["top1"]
    for interval in (small, large):
        assert interval.estimate == pytest.approx(0.1)
        assert interval.low < 0.1 < interval.high and interval.excludes_zero
    # 4× the images: the interval is about half as wide (1/√4).
    assert 0.4 < (large.high - large.low) / (small.high - small.low) < 0.6


def test_interval_width_matches_the_binomial_by_hand():
    # Only the 10% discordant images differ, so the resampled difference is Binomial(n, 0.1) / n:
    # a 95% interval of about ±1.96·√(0.1·0.9/n) around 0.1.
    n = 1000
    interval = paired_bootstrap([constructed(n, 0.7, 0.6)], NO_GROUPS, num_classes=1, resamples=4000)["top1"]
    half_width = 1.96 * math.sqrt(0.1 * 0.9 / n)
    assert interval.low == pytest.approx(0.1 - half_width, abs=0.15 * half_width)
    assert interval.high == pytest.approx(0.1 + half_width, abs=0.15 * half_width)


def test_identical_methods_give_a_zero_width_interval_at_zero():
    interval = paired_bootstrap([constructed(50, 0.6, 0.6)], NO_GROUPS, num_classes=1)["top1"]
    assert (interval.estimate, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert not interval.excludes_zero


def test_seeds_are_resampled_too():
    # Seed pair 1 differs by 0, seed pair 2 by 0.2 with almost no image noise: replicates average two
    # draws of {0, 0.2}, so about a quarter of them are 0 and a quarter 0.2; the interval spans [0, 0.2].
    pairs = [constructed(20000, 0.5, 0.5), constructed(20000, 0.7, 0.5)]
    interval = paired_bootstrap(pairs, NO_GROUPS, num_classes=1)["top1"]
    assert interval.estimate == pytest.approx(0.1)
    assert interval.low == pytest.approx(0.0, abs=0.01)
    assert interval.high == pytest.approx(0.2, abs=0.01)


def test_shot_groups_balanced_and_overall_are_computed_on_the_right_classes():
    # Class 0 (many): 100 images, both methods 80% right. Class 1 (few): 10 images, method 60%, baseline 20%.
    labels = np.array([0] * 100 + [1] * 10)
    method = np.array([True] * 80 + [False] * 20 + [True] * 6 + [False] * 4)
    baseline = np.array([True] * 80 + [False] * 20 + [True] * 2 + [False] * 8)
    pair = PairedRun(labels, method, baseline)
    intervals = paired_bootstrap([pair], {"many": [0], "few": [1]}, num_classes=3)  # class 2 has no images
    assert intervals["many"].estimate == 0.0 and intervals["many"].low == intervals["many"].high == 0.0
    assert intervals["few"].estimate == pytest.approx(0.4)
    assert intervals["balanced_accuracy"].estimate == pytest.approx(0.2)  # (0 + 0.4) / 2 classes with images
    assert intervals["top1"].estimate == pytest.approx(4 / 110)  # 4 more right out of 110
    assert "medium" not in intervals  # no medium class


def test_fixed_seed_regenerates_the_same_interval():
    pairs = [constructed(300, 0.65, 0.6, classes=3)]
    assert paired_bootstrap(pairs, NO_GROUPS, num_classes=3) == paired_bootstrap(
        pairs, NO_GROUPS, num_classes=3
    )
    assert width(pairs, seed=0) != width(pairs, seed=1)


def test_pairing_records_of_different_test_splits_is_refused():
    first = {"run_id": "a", "test_labels": [0, 1], "test_predictions": [0, 1]}
    second = {"run_id": "b", "test_labels": [1, 0], "test_predictions": [1, 0]}
    with pytest.raises(ValueError, match="different test labels"):
        PairedRun.of(first, second)
    pair = PairedRun.of(first, {**second, "test_labels": [0, 1], "test_predictions": [0, 0]})
    assert pair.method_correct.tolist() == [True, True] and pair.baseline_correct.tolist() == [
        True,
        False,
    ]
