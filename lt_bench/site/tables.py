"""The numbers of a dataset's sortable leaderboard: one row per variant of each setting, the
report's grouping (`report.runs`) and paired bootstrap intervals against CE (`report.page`)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import pandas as pd

from lt_bench.leaderboard import mean_std, pretraining_text
from lt_bench.report.bootstrap import Interval
from lt_bench.report.page import REFERENCE_BASELINE, SUMMARY_COLUMNS, paired_intervals, seed_pairs
from lt_bench.report.runs import DatasetRuns, Record, Setting, Variant
from lt_bench.test_shift import MEAN, shift_accuracies

# Metric columns: record test metric → header; "shift_mean" is top-1 averaged over the label shifts.
METRIC_COLUMNS = {**SUMMARY_COLUMNS, "shift_mean": "Shift mean"}
INTERVAL_METRICS = ("top1", "balanced_accuracy", "many", "medium", "few")


@dataclass(frozen=True)
class Summary:
    """A metric over a variant's seeds, in %: mean, sample std (None for one seed), the seeds' values."""

    mean: float | None
    std: float | None
    values: list[float]

    @property
    def text(self) -> str:
        """As the leaderboard writes it: '72.3 ± 1.2', '72.3' for one seed, '–' for none."""
        return mean_std(pd.Series(self.values, dtype=float) / 100)


@dataclass
class BoardRow:
    """One variant of one setting, with what the site's table and its expanded row show."""

    setting: Setting
    variant: Variant
    pretraining: str
    metrics: dict[str, Summary]
    intervals: dict[str, Interval] = field(default_factory=dict)  # against CE, when paired
    seed_pairs: int = 0

    @property
    def run_ids(self) -> list[str]:
        return [run["run_id"] for run in self.variant.runs]


def summarise(values: list[float | None]) -> Summary:
    present = [100 * v for v in values if v is not None]
    if not present:
        return Summary(None, None, [])
    std = statistics.stdev(present) if len(present) > 1 else None
    return Summary(statistics.fmean(present), std, present)


def board_rows(runs: DatasetRuns) -> list[BoardRow]:
    """Every variant of every setting, best overall top-1 first."""
    rows = []
    for setting, variants in runs.settings.items():
        baseline = next((v for v in variants.values() if v.method == REFERENCE_BASELINE), None)
        for variant in variants.values():
            row = BoardRow(setting, variant, pretraining_text(variant.runs[0]), _metrics(variant.runs))
            if baseline is not None and variant is not baseline:
                pairs = seed_pairs(variant, baseline)
                row.seed_pairs = len(pairs)
                row.intervals = paired_intervals(pairs) if pairs else {}
            rows.append(row)
    return sorted(rows, key=lambda row: (-(row.metrics["top1"].mean or -1.0), row.variant.label))


def _metrics(runs: list[Record]) -> dict[str, Summary]:
    tests = [run["metrics"]["test"] for run in runs]
    metrics = {name: summarise([test.get(name) for test in tests]) for name in METRIC_COLUMNS}
    metrics["shift_mean"] = summarise([shift_accuracies(run)[MEAN] for run in runs])
    return metrics
