"""Test-time adaptation (method hook (j)): a method that learns from unlabelled test images, such as
SADE's self-supervised expert aggregation, adapts once per test set it is measured on: the test split,
then each shifted test set of the test-agnostic evaluation (`lt_bench.test_shift`).

It sees the eval-mode backbone features of two augmented views of that set's images (the dataset's
training augmentation, drawn from the run's seed), never their labels; labels only decide which
images a shifted set keeps, as the protocol defines it. The record keeps, per shifted set, the knobs
learnt and the predictions they give, so the shift table shows the method adapted to each set.
"""

from __future__ import annotations

from typing import Any

import torch

from lt_bench.backbones import LongTailClassifier
from lt_bench.config import RunConfig
from lt_bench.data.base import LongTailedData
from lt_bench.method import Method
from lt_bench.test_shift import SHIFTS, shifted_indices
from lt_bench.training import derived_seed, extract_features

VIEWS = (1, 2)  # the seed parts of the two views' augmentation draws
ORDER = 0  # the seed part of the order the adaptation sees images in, the same for every test set


def augmented_views(
    model: LongTailClassifier, data: LongTailedData, config: RunConfig, device: torch.device, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of two augmented views of every test image, in split order."""
    with torch.random.fork_rng(devices=[]):  # a data loader may draw its seed from the global RNG
        first, second = (
            extract_features(
                model,
                data.test,
                batch_size=batch_size,
                device=device,
                precision=config.precision,
                augmentation_seed=derived_seed(config.seed, view),
            )
            for view in VIEWS
        )
    return first, second


def adapted_test(
    method: Method,
    model: LongTailClassifier,
    data: LongTailedData,
    test_features: torch.Tensor,
    knobs: dict[str, float],
    config: RunConfig,
    batch_size: int,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The test logits under the knobs adapted on the whole test split, and the record's
    `test_adaptation`: those knobs and, per shifted test set, its own knobs and predictions (in the
    order of `shifted_indices`). The views' features are extracted `batch_size` images at a time."""
    views = augmented_views(model, data, config, test_features.device, batch_size)
    model.head.eval()
    whole = method.adapt_to_test(model.head, *views, _generator(config.seed))
    with torch.no_grad():
        logits = method.inference_logits(model.head, test_features, **knobs, **whole).cpu()
    labels = data.test.labels.numpy()
    shifts = {}
    for shift in SHIFTS:
        kept = torch.as_tensor(shifted_indices(labels, data.class_counts, shift, config.data_seed))
        kept = kept.to(test_features.device)
        in_split_order = kept.sort().values  # the set, not its listing, decides the adaptation
        adapted = method.adapt_to_test(
            model.head, views[0][in_split_order], views[1][in_split_order], _generator(config.seed)
        )
        with torch.no_grad():
            shifted = method.inference_logits(model.head, test_features[kept], **knobs, **adapted)
        shifts[shift.name] = {"knobs": adapted, "predictions": shifted.argmax(1).tolist()}
    return logits, {"knobs": whole, "shifts": shifts}


def _generator(seed: int) -> torch.Generator:
    """The same draws for every test set, so that a shifted set equal to the split (uniform, when it
    keeps every image) adapts alike: the same knobs, hence the same predictions."""
    return torch.Generator().manual_seed(derived_seed(seed, ORDER))
