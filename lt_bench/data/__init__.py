"""Long-tailed datasets: types, the exponential profile, samplers and the dataset registry."""

from lt_bench.data.base import (
    DATASETS,
    DataOptions,
    DatasetSource,
    LongTailedData,
    Recipe,
    ShotRule,
    Split,
    TensorAugmentation,
    TensorSplit,
)
from lt_bench.data.profile import draw_per_class, long_tailed_counts

__all__ = [
    "DATASETS",
    "DataOptions",
    "DatasetSource",
    "LongTailedData",
    "Recipe",
    "ShotRule",
    "Split",
    "TensorAugmentation",
    "TensorSplit",
    "draw_per_class",
    "long_tailed_counts",
]
