"""Paired bootstrap confidence intervals for the accuracy difference of two methods.

Scheme (two levels, paired): each replicate draws S seed pairs with replacement from the S pairs
of runs that share a seed and a test split; within each drawn pair it resamples the test images of
every class with replacement, the same images for both methods, keeping the class composition of
the test split (long-tail test splits are built with a fixed number of images per class). The
replicate's difference is the mean over its drawn pairs; the 95% interval is the 2.5th–97.5th
percentile of the replicates. A difference only depends on how many resampled images of each class
only the method gets right and how many only the baseline does; those two counts are drawn from
their multinomial (a binomial, then a binomial of the rest): the same distribution as resampling
image indices, at a cost independent of the number of images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lt_bench.evaluation import SHOT_GROUPS

RESAMPLES = 2000
RNG_SEED = 0
CONFIDENCE = 0.95
# Differences reported for every comparison; shot groups are means of per-class accuracy.
STATISTICS = ("top1", "balanced_accuracy", "many", "medium", "few")


@dataclass(frozen=True)
class PairedRun:
    """Per test image, whether each of two runs on the same test split got it right."""

    labels: np.ndarray  # int, [N]
    method_correct: np.ndarray  # bool, [N]
    baseline_correct: np.ndarray  # bool, [N]

    @classmethod
    def of(cls, method_record: Mapping, baseline_record: Mapping) -> PairedRun:
        """Pair two records image by image; ValueError when their test splits differ."""
        labels = np.asarray(method_record["test_labels"], dtype=np.int64)
        if not np.array_equal(labels, np.asarray(baseline_record["test_labels"], dtype=np.int64)):
            raise ValueError(
                f"records {method_record['run_id']} and {baseline_record['run_id']} have "
                "different test labels"
            )
        return cls(
            labels,
            np.asarray(method_record["test_predictions"]) == labels,
            np.asarray(baseline_record["test_predictions"]) == labels,
        )

    def outcome_counts(self, num_classes: int) -> np.ndarray:
        """[C, 4] images per class with outcome 2·method_correct + baseline_correct."""
        outcome = 2 * self.method_correct.astype(np.int64) + self.baseline_correct.astype(np.int64)
        return np.bincount(self.labels * 4 + outcome, minlength=num_classes * 4).reshape(num_classes, 4)


@dataclass(frozen=True)
class Interval:
    """A difference (method − baseline, as a fraction) and its bootstrap confidence interval."""

    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def _class_masks(groups: Mapping[str, Sequence[int]], present: np.ndarray) -> dict[str, np.ndarray]:
    """Per statistic, the classes with test images it averages over; empty groups left out."""
    present_classes = np.flatnonzero(present)
    masks = {name: np.isin(present_classes, groups.get(name, ())) for name in SHOT_GROUPS}
    masks.update(
        top1=np.ones(len(present_classes), dtype=bool),
        balanced_accuracy=np.ones_like(masks["many"]),
    )
    return {name: masks[name] for name in STATISTICS if masks[name].any()}


def _differences(
    only_method: np.ndarray, only_baseline: np.ndarray, totals: np.ndarray, masks: Mapping[str, np.ndarray]
) -> np.ndarray:
    """Per class [..., C] counts of images only one method gets right → [..., len(masks)] differences."""
    extra = only_method - only_baseline
    differences = []
    for name, members in masks.items():
        if name == "top1":  # micro: over images
            differences.append(extra.sum(axis=-1) / totals.sum())
        else:  # macro: mean per-class accuracy
            differences.append((extra[..., members] / totals[members]).mean(axis=-1))
    return np.stack(differences, axis=-1)


def paired_bootstrap(
    pairs: Sequence[PairedRun],
    groups: Mapping[str, Sequence[int]],
    num_classes: int,
    *,
    resamples: int = RESAMPLES,
    seed: int = RNG_SEED,
) -> dict[str, Interval]:
    """Mean difference over the seed pairs and its percentile interval, per statistic of STATISTICS
    (shot groups without classes with test images are left out)."""
    if not pairs:
        raise ValueError("paired_bootstrap needs at least one pair of runs")
    outcomes = [pair.outcome_counts(num_classes) for pair in pairs]
    present = outcomes[0].sum(axis=1) > 0
    if any(not np.array_equal(table.sum(axis=1), outcomes[0].sum(axis=1)) for table in outcomes):
        raise ValueError("the paired runs do not have the same number of test images per class")
    masks = _class_masks(groups, present)
    totals = outcomes[0].sum(axis=1)[present]
    # Outcome 2 = only the method right, outcome 1 = only the baseline right.
    discordant = [(table[present, 2], table[present, 1]) for table in outcomes]
    estimate = np.mean([_differences(m, b, totals, masks) for m, b in discordant], axis=0)
    rng = np.random.default_rng(seed)
    drawn_pairs = rng.integers(0, len(pairs), size=(resamples, len(pairs)))
    replicate = np.empty((resamples, len(pairs), len(masks)))
    for index, (only_method, only_baseline) in enumerate(discordant):
        slots = drawn_pairs == index
        size = (int(slots.sum()), len(totals))
        baseline_draws = rng.binomial(totals, only_baseline / totals, size=size)
        rest = totals - only_baseline
        share = np.divide(only_method, rest, out=np.zeros(len(totals)), where=rest > 0)
        method_draws = rng.binomial(totals - baseline_draws, share, size=size)
        replicate[slots] = _differences(method_draws, baseline_draws, totals, masks)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(replicate.mean(axis=1), [tail, 100 - tail], axis=0)
    return {name: Interval(float(estimate[i]), float(low[i]), float(high[i])) for i, name in enumerate(masks)}
