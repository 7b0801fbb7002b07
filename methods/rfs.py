"""Repeat factor sampling: the LVIS baseline sampler.

Gupta, Dollár & Girshick, "LVIS: A Dataset for Large Vocabulary Instance Segmentation", CVPR 2019
(Sec. 5 / Appendix): category c's repeat factor r_c = max(1, sqrt(t / f_c)), f_c the fraction of
training images holding c; an image repeats r_i = max over its categories of r_c per epoch, rounded
stochastically (official code: Detectron2 `detectron2/data/samplers/distributed_sampler.py`,
`RepeatFactorTrainingSampler.repeat_factors_from_category_frequency`, t = 0.001 in its LVIS configs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lt_bench.data import samplers
from lt_bench.method import METHODS, Method

LVIS_THRESHOLD = 0.001  # t of the LVIS configs
# t·N: images under which a category is oversampled on LVIS v1 (0.001 × 100,170 train images ≈ 100,
# the common / frequent boundary). Smaller training sets keep that count: t = 100 / N.
LVIS_THRESHOLD_IMAGES = 100
PUBLISHED_THRESHOLD = {"lvis_v1": LVIS_THRESHOLD, "lvis_v0.5": LVIS_THRESHOLD}


def category_repeat_factors(image_counts: Sequence[int], num_images: int, threshold: float) -> list[float]:
    """r_c = max(1, sqrt(t / f_c)) with f_c = image_counts[c] / num_images (1 for a category with none)."""
    return [max(1.0, math.sqrt(threshold * num_images / n)) if n else 1.0 for n in image_counts]


def image_repeat_factors_from(
    image_categories: Sequence[set[int]], category_factors: Sequence[float]
) -> list[float]:
    """r_i = max over the image's categories (1-based ids) of r_c; 1 for an image without any."""
    return [
        max((category_factors[c - 1] for c in categories), default=1.0) for categories in image_categories
    ]


@METHODS.register("rfs")
class RepeatFactorSampling(Method):
    """Cross-entropy with repeat factor sampling (t = 0.001 on LVIS, t·N = 100 images elsewhere)."""

    description = "repeat factor sampling, t = 0.001 (Gupta et al., LVIS, CVPR 2019)"
    supports_instance_segmentation = True

    def threshold(self, num_images: int) -> float:
        return PUBLISHED_THRESHOLD.get(self.context.dataset, LVIS_THRESHOLD_IMAGES / num_images)

    def image_repeat_factors(self, image_categories: list[set[int]]) -> list[float]:
        counts = [0] * self.context.num_classes
        for categories in image_categories:
            for category in categories:
                counts[category - 1] += 1
        num_images = len(image_categories)
        factors = category_repeat_factors(counts, num_images, self.threshold(num_images))
        return image_repeat_factors_from(image_categories, factors)

    def sample_order(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Classification: each image stands for its one class; the epoch keeps its length (the first
        len(labels) indices of the repeated, shuffled stream are used)."""
        factors = self.image_repeat_factors([{int(label) + 1} for label in labels])
        return samplers.repeated(torch.tensor(factors), generator)
