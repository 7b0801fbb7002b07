"""Group a dataset's run records into settings (same data, backbone, epochs, protocol) and variants
(configurations, as the leaderboard's rows)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from lt_bench.selection import Configuration, Record, describe, differing_fields, select

# Fields every variant of a setting shares (the setting's own) or that its label starts with.
SETTING_FIELDS = ("dataset", "imbalance_ratio", "backbone", "epochs", "protocol", "method")


@dataclass(frozen=True)
class Setting:
    """Runs that are comparable: one dataset construction, backbone, training length and protocol."""

    imbalance_ratio: float | None  # None: a dataset whose split is fixed by its files
    backbone: str
    epochs: int
    protocol: str = "shared"

    @property
    def title(self) -> str:
        ratio = "" if self.imbalance_ratio is None else f", imbalance ratio {self.imbalance_ratio:g}"
        protocol = "" if self.protocol == "shared" else f", {self.protocol} protocol"
        return f"{self.backbone}, {self.epochs} epochs{ratio}{protocol}"

    @property
    def slug(self) -> str:
        ratio = "" if self.imbalance_ratio is None else f"-ir{self.imbalance_ratio:g}"
        protocol = "" if self.protocol == "shared" else f"-{self.protocol}"
        return f"{self.backbone}-{self.epochs}ep{ratio}{protocol}"

    def sort_key(self) -> tuple:
        return (
            self.imbalance_ratio is not None,
            self.imbalance_ratio or 0.0,
            self.backbone,
            self.epochs,
            self.protocol != "shared",
            self.protocol,
        )


@dataclass
class Variant:
    """One configuration in one setting: a method and the fields that tell it from the setting's
    other variants; one run per training seed."""

    label: str
    method: str
    runs: list[Record] = field(default_factory=list)

    def run_for(self, seed: int, data_seed: int) -> Record | None:
        return next((r for r in self.runs if (r["seed"], r["data_seed"]) == (seed, data_seed)), None)


@dataclass
class DatasetRuns:
    """A dataset's selected records, grouped; `superseded` counts older records of the same runs."""

    dataset: str
    records: list[Record]
    settings: dict[Setting, dict[str, Variant]]
    superseded: int

    @property
    def commits(self) -> Counter:
        return Counter(record.get("git_commit") or "unknown" for record in self.records)


def setting_of(entry: Configuration) -> Setting:
    values = entry.values
    ratio = values["imbalance_ratio"]
    return Setting(
        None if ratio is None else float(ratio), values["backbone"], int(values["epochs"]), values["protocol"]
    )


def variant_label(entry: Configuration, fields: list[str]) -> str:
    """The method plus the configuration's `fields`: 'causal_tde (lr 0.05, knobs alpha=2)'."""
    details = describe(entry, fields)
    return f"{entry.values['method']} ({details})" if details else entry.values["method"]


def group_runs(records: Iterable[Record], dataset: str) -> DatasetRuns:
    """`dataset`'s newest record per configuration and seed, as settings of labelled variants."""
    selection = select(record for record in records if record["dataset"] == dataset)
    by_setting: dict[Setting, list[Configuration]] = {}
    for entry in selection.configurations:
        by_setting.setdefault(setting_of(entry), []).append(entry)
    settings: dict[Setting, dict[str, Variant]] = {}
    for setting in sorted(by_setting, key=Setting.sort_key):
        entries = by_setting[setting]
        fields = differing_fields(entries, shown=SETTING_FIELDS)
        variants = [
            Variant(variant_label(entry, fields), entry.values["method"], entry.records) for entry in entries
        ]
        settings[setting] = {variant.label: variant for variant in sorted(variants, key=lambda v: v.label)}
    return DatasetRuns(dataset, selection.records, settings, selection.superseded)
