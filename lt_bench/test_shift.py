"""Test-agnostic evaluation: accuracy on class-wise subsamples of the balanced test set whose label
distribution is itself long-tailed, forward (as training), uniform, or backward (the inverse).

The protocol of LADE (Hong et al., CVPR 2021) and SADE (Zhang et al., NeurIPS 2022; official code
Vanint/SADE-AgnosticLT, `data_loader/imbalance_cifar.py` and `test_all_cifar.py`): with the classes
ranked by training count, the class of rank r keeps n_r = int(n_max · (1/ρ)^(r/(C−1))) test images
(forward ρ = 50, 25, 10, 5, 2), or n_r = int(n_max · (1/ρ)^((C−1−r)/(C−1))) (backward); uniform is
the whole balanced test set. Each subsample is drawn per class, in class order, from one
`RandomState(data seed)` (seed 0: SADE's draw), so it is the same for every method of a dataset and
data seed. Accuracies come from the record's stored per-image labels and predictions: no retraining
(a method that adapts at test time stores its predictions adapted to each shifted set).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lt_bench.data.profile import draw_per_class, long_tailed_counts


@dataclass(frozen=True)
class LabelShift:
    """One test label distribution: an imbalance ratio, along or against the training order."""

    imbalance_ratio: int
    backward: bool = False

    @property
    def name(self) -> str:
        if self.imbalance_ratio == 1:
            return "uniform"
        return f"{'backward' if self.backward else 'forward'}{self.imbalance_ratio}"

    @property
    def title(self) -> str:
        """The table header: 'fwd 50', 'uniform', 'bwd 2'."""
        if self.imbalance_ratio == 1:
            return "uniform"
        return f"{'bwd' if self.backward else 'fwd'} {self.imbalance_ratio}"


# LADE's and SADE's eleven test distributions, in their tables' order.
SHIFTS = (
    *(LabelShift(ratio) for ratio in (50, 25, 10, 5, 2)),
    LabelShift(1),
    *(LabelShift(ratio, backward=True) for ratio in (2, 5, 10, 25, 50)),
)
MEAN = "mean"  # the mean top-1 over the eleven distributions


def shifted_counts(test_counts: Sequence[int], class_counts: Sequence[int], shift: LabelShift) -> list[int]:
    """Test images each class keeps under `shift`; classes ranked by training count (most first, ties
    by class index). n_max is the smallest count of a class with test images (all of a balanced set)."""
    present = [count for count in test_counts if count > 0]
    if not present:
        return [0] * len(test_counts)
    by_rank = long_tailed_counts(min(present), len(class_counts), shift.imbalance_ratio)
    if shift.backward:
        by_rank.reverse()
    ranked = sorted(range(len(class_counts)), key=lambda c: (-class_counts[c], c))
    counts = [0] * len(class_counts)
    for rank, class_index in enumerate(ranked):
        counts[class_index] = min(by_rank[rank], test_counts[class_index])
    return counts


def shifted_indices(
    labels: np.ndarray, class_counts: Sequence[int], shift: LabelShift, data_seed: int
) -> np.ndarray:
    """Positions in the test split of the images `shift` keeps, sorted by class. Records of one test
    split share them, so they are drawn once per (split, training counts, shift, data seed)."""
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    return _shifted_indices(labels.tobytes(), tuple(class_counts), shift, data_seed).copy()


@functools.lru_cache(maxsize=256)
def _shifted_indices(
    labels_bytes: bytes, class_counts: tuple[int, ...], shift: LabelShift, data_seed: int
) -> np.ndarray:
    labels = np.frombuffer(labels_bytes, dtype=np.int64)
    test_counts = np.bincount(labels, minlength=len(class_counts)).tolist()
    counts = shifted_counts(test_counts, class_counts, shift)
    return draw_per_class(labels, counts, np.random.RandomState(data_seed % 2**32))


def shift_accuracies(record: Mapping[str, Any]) -> dict[str, float]:
    """Top-1 of the record's stored test predictions on each shifted test set, and their mean; for a
    method that adapts at test time, of the predictions it made adapted to that set (lt_bench.test_time)."""
    labels = np.asarray(record["test_labels"], dtype=np.int64)
    predictions = np.asarray(record["test_predictions"], dtype=np.int64)
    adapted = record.get("test_adaptation", {}).get("shifts", {})
    accuracies = {}
    for shift in SHIFTS:
        kept = shifted_indices(labels, record["class_counts"], shift, int(record.get("data_seed", 0)))
        kept_predictions = (
            np.asarray(adapted[shift.name]["predictions"], dtype=np.int64)
            if shift.name in adapted
            else predictions[kept]
        )
        accuracies[shift.name] = float((kept_predictions == labels[kept]).mean())
    accuracies[MEAN] = float(np.mean(list(accuracies.values())))
    return accuracies
