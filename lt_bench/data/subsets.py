"""Long-tailed subsets of a balanced official training set, as LDAM-DRW builds CIFAR-LT.

Shared by the in-memory datasets whose official training set is balanced (CIFAR-10/100,
Fashion-MNIST): the long-tailed training subset, a validation split from the training images that
subset leaves out, and the official test set untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lt_bench.data.base import DataOptions, LongTailedData, TensorAugmentation, TensorSplit
from lt_bench.data.profile import draw_per_class, long_tailed_counts
from lt_bench.errors import UserError


def resolved_imbalance_ratio(options: DataOptions, default: float) -> float:
    """The ratio the user asked for, else the dataset's default; a UserError unless it is >= 1."""
    ratio = default if options.imbalance_ratio is None else options.imbalance_ratio
    if not ratio >= 1:
        raise UserError(f"--imbalance-ratio must be a number >= 1 (1 is balanced), got {ratio}")
    return ratio


def long_tailed_subset(
    labels: np.ndarray, num_classes: int, imbalance_ratio: float, data_seed: int, val_per_class: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices into a balanced training set.

    Training: class c keeps n_c = int(n_max · (1/ratio)^(c/(C−1))) images, n_max = len/C, drawn by
    shuffling each class's indices (in file order, classes ascending) with one legacy
    `RandomState(data_seed)` and keeping the first n_c: the exact LDAM-DRW subset at seed 0
    (Cao et al. 2019, kaidic/LDAM-DRW imbalance_cifar.py). Validation: up to `val_per_class` of the
    images the subset left out, per class, from the same stream; a class the profile uses whole
    (the head class) has none, so validation never overlaps training.
    """
    max_count = len(labels) // num_classes
    counts = long_tailed_counts(max_count, num_classes, imbalance_ratio)
    available = np.bincount(labels, minlength=num_classes)
    short = [c for c in range(num_classes) if available[c] < counts[c]]
    if short:
        raise UserError(
            f"class {short[0]} has {available[short[0]]} training images, the long-tailed profile needs "
            f"{counts[short[0]]}: the training files are incomplete; restore the official files"
        )
    stream = np.random.RandomState(data_seed)
    train = draw_per_class(labels, counts, stream)
    left_out = available - np.bincount(labels[train], minlength=num_classes)
    val_counts = np.minimum(left_out, val_per_class).tolist()
    if not sum(val_counts):
        raise UserError(
            f"--imbalance-ratio {imbalance_ratio:g} keeps every training image, so none is left for a "
            "validation split apart from the test images; pass an --imbalance-ratio above 1"
        )
    val = draw_per_class(labels, val_counts, stream, exclude=train)
    return train, val


def in_memory_long_tailed(
    name: str,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    *,
    num_classes: int,
    imbalance_ratio: float,
    data_seed: int,
    val_per_class: int,
    mean: Sequence[float],
    std: Sequence[float],
    augmentation: TensorAugmentation,
    class_names: list[str],
) -> LongTailedData:
    """A LongTailedData of uint8 [N, C, H, W] arrays: long-tailed train, left-out val, official test."""
    train, val = long_tailed_subset(train_labels, num_classes, imbalance_ratio, data_seed, val_per_class)

    def split(images: np.ndarray, labels: np.ndarray) -> TensorSplit:
        # Augmentation only acts on batches drawn with train=True, i.e. on the training split.
        return TensorSplit(
            torch.from_numpy(np.ascontiguousarray(images)),
            torch.from_numpy(labels.astype(np.int64)),
            tuple(mean),
            tuple(std),
            augmentation,
        )

    return LongTailedData(
        name=name,
        num_classes=num_classes,
        train=split(train_images[train], train_labels[train]),
        val=split(train_images[val], train_labels[val]),
        test=split(test_images, test_labels),
        class_counts=np.bincount(train_labels[train], minlength=num_classes).tolist(),
        in_chans=train_images.shape[1],
        class_names=class_names,
    )
