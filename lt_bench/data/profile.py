"""The exponential long-tail profile of the literature and seeded per-class subsets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def long_tailed_counts(max_count: int, num_classes: int, imbalance_ratio: float) -> list[int]:
    """Per-class counts n_i = int(max_count · (1/imbalance_ratio)^(i/(C−1))), class 0 the head.

    The truncating `int` matches the LDAM-DRW construction of CIFAR-LT (Cao et al. 2019), e.g.
    CIFAR-10 at ratio 100 gives 5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50.
    """
    if imbalance_ratio < 1:
        raise ValueError(f"imbalance ratio must be >= 1, got {imbalance_ratio}")
    if num_classes == 1:
        return [int(max_count)]
    factor = 1.0 / imbalance_ratio
    return [int(max_count * factor ** (i / (num_classes - 1.0))) for i in range(num_classes)]


def draw_per_class(
    labels: np.ndarray,
    counts: Sequence[int],
    generator: np.random.Generator | np.random.RandomState,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of `counts[c]` images of each class c, drawn without replacement, sorted by class.

    Indices in `exclude` are never drawn (they belong to another split). With a legacy
    `RandomState`, `permutation` consumes the stream exactly as `shuffle` does (LDAM-DRW's draw).
    """
    available = np.ones(len(labels), dtype=bool)
    if exclude is not None:
        available[exclude] = False
    # Each class's positions in increasing order, found once (a stable sort) rather than by a scan of
    # every label per class: the same pools, in O(N log N) instead of O(N · classes).
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(len(counts) + 1))
    chosen = []
    for class_index, count in enumerate(counts):
        pool = order[starts[class_index] : starts[class_index + 1]]
        pool = pool[available[pool]]
        if count > len(pool):
            raise ValueError(f"class {class_index} has {len(pool)} images, {count} requested")
        chosen.append(np.sort(generator.permutation(pool)[:count]))
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)


def hold_out_then_long_tail(
    labels: np.ndarray,
    *,
    val_per_class: int,
    test_per_class: int,
    max_count: int,
    imbalance_ratio: float,
    data_seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / val / test indices for a balanced pool: balanced val and test held out per class,
    then the exponential profile drawn from what is left (seeded by `data_seed`)."""
    generator = np.random.default_rng(data_seed)
    num_classes = int(labels.max()) + 1
    val = draw_per_class(labels, [val_per_class] * num_classes, generator)
    test = draw_per_class(labels, [test_per_class] * num_classes, generator, exclude=val)
    counts = long_tailed_counts(max_count, num_classes, imbalance_ratio)
    train = draw_per_class(labels, counts, generator, exclude=np.concatenate([val, test]))
    return train, val, test
