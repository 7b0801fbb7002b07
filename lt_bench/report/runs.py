"""Group a dataset's run records into settings (same data, backbone, epochs) and method variants."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True)
class Setting:
    """Runs that are comparable: one dataset construction, one backbone, one training length."""

    imbalance_ratio: float | None  # None: a dataset whose split is fixed by its files
    backbone: str
    epochs: int

    @property
    def title(self) -> str:
        ratio = "" if self.imbalance_ratio is None else f", imbalance ratio {self.imbalance_ratio:g}"
        return f"{self.backbone}, {self.epochs} epochs{ratio}"

    @property
    def slug(self) -> str:
        ratio = "" if self.imbalance_ratio is None else f"-ir{self.imbalance_ratio:g}"
        return f"{self.backbone}-{self.epochs}ep{ratio}"

    def sort_key(self) -> tuple:
        return (
            self.imbalance_ratio is not None,
            self.imbalance_ratio or 0.0,
            self.backbone,
            self.epochs,
        )


@dataclass
class Variant:
    """One method (with any knobs fixed by hand) in one setting; one run per (seed, data_seed)."""

    label: str
    method: str
    runs: list[Record] = field(default_factory=list)

    def run_for(self, seed: int, data_seed: int) -> Record | None:
        return next((r for r in self.runs if (r["seed"], r["data_seed"]) == (seed, data_seed)), None)


@dataclass
class DatasetRuns:
    """A dataset's finished records, grouped; `superseded` counts older duplicates left out."""

    dataset: str
    records: list[Record]
    settings: dict[Setting, dict[str, Variant]]
    superseded: int

    @property
    def commits(self) -> Counter:
        return Counter(record.get("git_commit") or "unknown" for record in self.records)


def variant_label(record: Record) -> str:
    """The method name plus the test-time knobs a run fixed instead of selecting: 'x (alpha=2)'."""
    fixed = record["config"].get("knobs") or {}
    if not fixed:
        return record["method"]
    return f"{record['method']} ({', '.join(f'{k}={v:g}' for k, v in sorted(fixed.items()))})"


def setting_of(record: Record) -> Setting:
    ratio = record["config"].get("imbalance_ratio")
    return Setting(
        None if ratio is None else float(ratio), record["backbone"], int(record["config"]["epochs"])
    )


def group_runs(records: Iterable[Record], dataset: str) -> DatasetRuns:
    """Keep `dataset`'s records: per variant and (seed, data_seed) the most recently finished."""
    latest: dict[tuple, Record] = {}
    superseded = 0
    for record in records:
        if record["dataset"] != dataset:
            continue
        key = (setting_of(record), variant_label(record), record["seed"], record["data_seed"])
        if key in latest:
            superseded += 1
            if record.get("finished_at", "") < latest[key].get("finished_at", ""):
                continue
        latest[key] = record
    settings: dict[Setting, dict[str, Variant]] = {}
    order = sorted(latest.items(), key=lambda item: (item[0][0].sort_key(), *item[0][1:]))
    for (setting, label, _, _), record in order:
        variants = settings.setdefault(setting, {})
        variants.setdefault(label, Variant(label, record["method"])).runs.append(record)
    return DatasetRuns(dataset, list(latest.values()), settings, superseded)
