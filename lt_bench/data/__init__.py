"""Long-tailed datasets: types, the exponential profile, samplers and the dataset registry.

The names below are loaded on first use (PEP 562), so that `lt_bench.data.profile`, which the
results commands use, is imported without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    **dict.fromkeys(
        (
            "DATASETS",
            "DataOptions",
            "DatasetSource",
            "LongTailedData",
            "Recipe",
            "ShotRule",
            "Split",
            "TensorAugmentation",
            "TensorSplit",
        ),
        "lt_bench.data.base",
    ),
    **dict.fromkeys(("draw_per_class", "long_tailed_counts"), "lt_bench.data.profile"),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
