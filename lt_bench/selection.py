"""Which records a table shows: the newest record of each run, grouped into configurations.

A configuration is everything that decides a run's numbers except the training seed: the record's
config without its placement fields, plus how it ran (world size, precision) and what code and
split lists it ran on. The leaderboard and the report both show one row per configuration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lt_bench.config import PLACEMENT_FIELDS, RunConfig

Record = dict[str, Any]


def _default(spec: dataclasses.Field) -> Any:
    if spec.default is not dataclasses.MISSING:
        return spec.default
    return None if spec.default_factory is dataclasses.MISSING else spec.default_factory()


# Fields a record from an older lt-bench lacks take these values: the RunConfig defaults (in its
# field order, None where it has none), and for the record's own fields the values every run had
# before they were recorded.
CONFIG_DEFAULTS = {spec.name: _default(spec) for spec in dataclasses.fields(RunConfig)}
RECORD_DEFAULTS = {"world_size": 1, "precision": "fp32"}
DIGEST_FIELDS = ("lists_digest", "method_code")  # shown shortened
PER_METHOD_FIELDS = ("method_code",)  # compared between configurations of the same method only


def configuration(record: Record) -> dict[str, Any]:
    """The record's configuration: its config without placement fields and seed, older records
    completed with the defaults, plus world size, precision, split-list and method-code digests."""
    values = {
        **CONFIG_DEFAULTS,
        **record["config"],
        **{name: record[name] for name in ("method", "dataset", "backbone")},  # checked by read_record
    }
    for name in (*PLACEMENT_FIELDS, "seed"):
        values.pop(name, None)
    values.update({name: record.get(name, default) for name, default in RECORD_DEFAULTS.items()})
    method_code = record.get("method_code")
    values["method_code"] = method_code.get("digest") if isinstance(method_code, dict) else None
    return values


def configuration_key(record: Record) -> tuple:
    """A hashable form of `configuration(record)`: equal for records that differ only in the seed."""
    return _hashable(configuration(record))


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((name, _hashable(item)) for name, item in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(item) for item in value)
    return value


@dataclass
class Configuration:
    """One configuration and its newest finished record per training seed, by seed."""

    values: dict[str, Any]
    records: list[Record]


@dataclass
class Selection:
    """The configurations of a set of records; `superseded` counts older records of the same run."""

    configurations: list[Configuration]
    superseded: int

    @property
    def records(self) -> list[Record]:
        return [record for entry in self.configurations for record in entry.records]


def select(records: Iterable[Record]) -> Selection:
    """The newest finished record (by `finished_at`) per configuration and seed, grouped by
    configuration."""
    newest: dict[tuple, Record] = {}
    superseded = 0
    for record in records:
        if record["status"] != "finished":
            continue
        identity = (configuration_key(record), record["seed"])
        if identity in newest:
            superseded += 1
            if _finished_at(record) < _finished_at(newest[identity]):
                continue
        newest[identity] = record
    grouped: dict[tuple, Configuration] = {}
    for (key, _), record in sorted(newest.items(), key=lambda item: item[0][1]):
        grouped.setdefault(key, Configuration(configuration(record), [])).records.append(record)
    return Selection(list(grouped.values()), superseded)


def _finished_at(record: Record) -> str:
    return str(record.get("finished_at") or "")


def differing_fields(configurations: Sequence[Configuration], shown: Iterable[str] = ()) -> list[str]:
    """The configuration fields whose values are not the same in all `configurations` (in config
    order), leaving out the `shown` ones; these tell a table's rows apart. Method code differs from
    method to method by nature: it counts only where one method's configurations differ in it."""
    names = list(dict.fromkeys(name for entry in configurations for name in entry.values))
    return [name for name in names if name not in shown and _differs(name, configurations)]


def _differs(name: str, configurations: Sequence[Configuration]) -> bool:
    groups: dict[Any, set] = {}
    for entry in configurations:
        group = entry.values.get("method") if name in PER_METHOD_FIELDS else None
        groups.setdefault(group, set()).add(_hashable(entry.values.get(name)))
    return any(len(values) > 1 for values in groups.values())


def field_title(name: str) -> str:
    """A field as a reader says it: 'batch_size' → 'batch size'."""
    return name.replace("_", " ")


def value_text(name: str, value: Any) -> str:
    """A field's value for a table cell: '0.05', 'alpha=2', '160, 180'; '–' when empty."""
    if value is None or value == {} or value == [] or value == ():
        return "–"
    if isinstance(value, dict):
        return ", ".join(f"{key}={value_text(key, item)}" for key, item in sorted(value.items()))
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(name, item) for item in value)
    if isinstance(value, float) and math.isfinite(value):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    if name in DIGEST_FIELDS:
        return str(value)[:10]
    return str(value)


def describe(entry: Configuration, fields: Sequence[str]) -> str:
    """The non-empty `fields` of a configuration as 'lr 0.05, knobs alpha=2'."""
    texts = [(field_title(name), value_text(name, entry.values.get(name))) for name in fields]
    return ", ".join(f"{title} {text}" for title, text in texts if text != "–")
