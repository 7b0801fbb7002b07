"""Training protocols: `shared` (one recipe per dataset for every method, the equal-terms table) and
`paper` (each method on its own paper's recipe), and the published numbers a paper reports.

A method declares its paper, its paper's recipe per dataset and its reported numbers as data next to
its math (see `lt_bench.method.Method`), so a plugin brings its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROTOCOLS = ("shared", "paper", "tuned")  # tuned: the best trial of `lt-bench tune` (lt_bench.tuning)


@dataclass(frozen=True)
class Paper:
    """A paper whose tables `lt-bench reproduce KEY` reproduces."""

    key: str  # short name on the command line, e.g. "tde"
    citation: str  # authors, venue, year
    title: str
    repository: str  # the official code, e.g. "KaihuaTang/Long-Tailed-Recognition.pytorch"


@dataclass(frozen=True)
class PaperRecipe:
    """How a method's official code trains it on one dataset, as overrides of the shared recipe.

    `overrides` maps RunConfig fields (backbone, epochs, batch_size, lr, weight_decay, nesterov,
    schedule, warmup_epochs, warmup_start, milestones, lr_decay, select, ...) to the official values;
    `source` names the official config file; `deviations` say what lt-bench still does differently.
    """

    source: str
    overrides: Mapping[str, Any]
    deviations: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reported:
    """One published row: a method's test accuracy (%) in a paper's table."""

    dataset: str
    imbalance_ratio: float | None  # None: a dataset whose split is fixed by its files
    top1: float
    many: float | None = None
    medium: float | None = None
    few: float | None = None
    backbone: str = ""  # as the paper names it
    table: str = ""  # where in the paper, e.g. "Table 3"


@dataclass(frozen=True)
class ReportedDetection:
    """One published instance segmentation row: mask AP (%) overall and by LVIS frequency, and box AP."""

    dataset: str  # lvis_v1 or lvis_v0.5 (their val sets)
    AP: float
    AP50: float
    AP75: float
    APr: float
    APc: float
    APf: float
    box_AP: float
    detector: str = ""  # as the paper names it
    table: str = ""
