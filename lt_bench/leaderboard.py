"""Markdown leaderboards generated from run records: one table per dataset setting and protocol, one
row per configuration, mean ± std over its seeds; optionally cost columns, or top-1 under the
test-agnostic label shifts instead of the shot groups."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from lt_bench.selection import (
    Configuration,
    describe,
    differing_fields,
    field_title,
    select,
    value_text,
)
from lt_bench.test_shift import MEAN, SHIFTS, shift_accuracies

Record = dict[str, Any]
Metrics = Callable[[Record], Mapping[str, float | None]]  # a record's numbers, as fractions

COLUMNS = {"many": "Many", "medium": "Medium", "few": "Few", "top1": "Overall"}
SHIFT_COLUMNS = {**{shift.name: shift.title for shift in SHIFTS}, MEAN: "Mean"}
# `--columns` names: the column title and the field of the record's cost block, mean over seeds.
COST_COLUMNS = {
    "params": ("Params", "total_parameters"),
    "flops": ("FLOPs/image", "flops_per_image"),
    "images": ("Images seen", "images_seen"),
    "hours": ("Device-hours", "device_hours"),
}
# Fields every table shows anyway: in its title (dataset, ratio, protocol) or as a column (the
# pretraining fields in the Pretraining column, shown whenever some record starts from weights).
SHOWN_FIELDS = (
    "dataset",
    "imbalance_ratio",
    "protocol",
    "method",
    "backbone",
    "epochs",
    "pretrained",
    "pretrained_digest",
    "pretraining_data",
    "tuning",  # a tuned run's study: its budget is in the table's title
)
IDENTITY_COLUMNS = ("Method", "Backbone", "Epochs")


def mean_std(values: pd.Series, seeds: int | None = None) -> str:
    """Fractions as "mean ± std" in percent over the seeds that have the metric (sample std); "–"
    when none has it, and "(2 of 3 seeds)" when fewer than the row's `seeds` have it."""
    values = values.dropna().astype(float) * 100
    if values.empty:
        return "–"
    text = f"{values.iloc[0]:.1f}" if len(values) == 1 else f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"
    return text if seeds is None or len(values) >= seeds else f"{text} ({len(values)} of {seeds} seeds)"


def table_title(dataset: str, ratio: float | None, protocol: str) -> str:
    """'cifar10_lt (imbalance ratio 100, paper protocol)'; the shared protocol goes unnamed."""
    details = [] if ratio is None else [f"imbalance ratio {ratio:g}"]
    details += [] if protocol == "shared" else [protocol if ":" in protocol else f"{protocol} protocol"]
    return f"{dataset} ({', '.join(details)})" if details else dataset


def protocol_section(values: Mapping[str, Any]) -> str:
    """The protocol a table ranks; tuned runs by their tuning budget, so that methods tuned with
    different budgets never share a table: 'tuned: 8 trials per method (2 epochs × 1 seed)'."""
    if values["protocol"] != "tuned":
        return values["protocol"]
    budget = values["tuning"]["budget"]
    seeds = len(budget["seeds"])
    return (
        f"tuned: {budget['trials']} trials per method ({budget['epochs']} epochs × {seeds} "
        f"seed{'s' if seeds > 1 else ''})"
    )


def test_metrics(record: Record) -> Mapping[str, float | None]:
    return record["metrics"]["test"]


def count_text(value: float) -> str:
    """A count in three significant digits with an SI prefix: '24.1k', '315M'."""
    for power, prefix in ((12, "T"), (9, "G"), (6, "M"), (3, "k")):
        if abs(value) >= 10**power:
            return f"{value / 10**power:.3g}{prefix}"
    return f"{value:.3g}"


def cost_text(records: Sequence[Record], name: str) -> str:
    """The mean over seeds of a cost column, '–' when a record has no cost block (older lt-bench)."""
    field = COST_COLUMNS[name][1]
    values = [(record.get("cost") or {}).get(field) for record in records]
    if any(value is None for value in values):
        return "–"
    mean = sum(values) / len(values)
    return f"{mean:.3g}" if name == "hours" else count_text(mean)


def pretraining_text(record: Record) -> str:
    """Where the backbone's initial weights came from: 'none' (from scratch), timm's tag of its
    published weights (the pretraining data, e.g. 'openai', 'augreg_in21k') and 'external data', or
    'file <digest>' and the data it was trained on where the run declared it ('same' / 'external')."""
    block = record.get("pretraining")
    if block is None:  # a record from before the pretraining block: its config says
        config = record["config"]
        if config.get("pretrained"):
            return "timm (external data)"
        return f"file {config['pretrained_digest']}" if config.get("pretrained_digest") else "none"
    if block["weights"] == "timm":
        return f"{block.get('tag') or 'timm'} (external data)"
    if block["weights"] == "file":
        data = {"same": " (same data)", "external": " (external data)"}.get(block.get("data"), "")
        return f"file {block['digest']}{data}"
    return "none"


def leaderboard_tables(
    configurations: list[Configuration],
    *,
    columns: Mapping[str, str] = COLUMNS,
    metrics: Metrics = test_metrics,
    order: str = "top1",
    costs: Sequence[str] = (),
    pretraining: bool = False,
) -> dict[str, pd.DataFrame]:
    """Per dataset, imbalance ratio and protocol, a table with a row per configuration, best `order`
    metric first; columns for the Pretraining (with `pretraining`) and the configuration fields that
    differ between its rows, then the `metrics` named in `columns` (mean ± std in %), then the `costs`
    (COST_COLUMNS)."""
    tables: dict[tuple, list[Configuration]] = {}
    for entry in configurations:
        values = entry.values
        key = (values["dataset"], values["imbalance_ratio"], protocol_section(values))
        tables.setdefault(key, []).append(entry)
    result = {}
    for dataset, ratio, protocol in sorted(tables, key=_table_order):
        rows = tables[dataset, ratio, protocol]
        differing = differing_fields(rows, shown=SHOWN_FIELDS)
        frame = pd.DataFrame(
            [_row(entry, differing, columns, metrics, order, costs, pretraining) for entry in rows]
        )
        frame = frame.sort_values(
            ["_order", "Method", "_label"], ascending=[False, True, True], kind="stable"
        )
        result[table_title(dataset, ratio, protocol)] = frame.drop(columns=["_order", "_label"]).reset_index(
            drop=True
        )
    return result


def _table_order(key: tuple) -> tuple:
    dataset, ratio, protocol = key
    return dataset, ratio is None, ratio or 0.0, protocol != "shared", protocol


def _row(
    entry: Configuration,
    differing: list[str],
    columns: Mapping[str, str],
    metrics: Metrics,
    order: str,
    costs: Sequence[str],
    pretraining: bool,
) -> dict[str, Any]:
    values = entry.values
    tests = pd.DataFrame([metrics(record) for record in entry.records])
    row: dict[str, Any] = {
        "Method": values["method"],
        "Backbone": values["backbone"],
        "Epochs": values["epochs"],
    }
    if pretraining:
        row["Pretraining"] = pretraining_text(entry.records[0])
    row.update({field_title(name): value_text(name, values.get(name)) for name in differing})
    seeds = len(entry.records)
    row.update(
        {title: mean_std(tests[key], seeds) if key in tests else "–" for key, title in columns.items()}
    )
    row.update({COST_COLUMNS[name][0]: cost_text(entry.records, name) for name in costs})
    row["Seeds"] = seeds
    row["_order"] = tests[order].astype(float).mean() if order in tests else float("nan")
    row["_label"] = describe(entry, differing)
    return row


def leaderboard_markdown(
    records: Iterable[Record], *, test_shift: bool = False, costs: Sequence[str] = ()
) -> str:
    """The whole leaderboard page: test accuracy (%) per shot group, mean ± std over seeds; with
    `test_shift`, top-1 on each test-agnostic label shift instead; `costs` adds COST_COLUMNS."""
    from lt_bench.detection.leaderboard import detection_section
    from lt_bench.record_schema import is_detection

    records = list(records)
    detection = [record for record in records if is_detection(record)]
    selection = select([record for record in records if not is_detection(record)])
    command = "lt-bench leaderboard" + (" --test-shift" if test_shift else "")
    command += f" --columns {','.join(costs)}" if costs else ""
    lines = ["# lt-bench leaderboard" + (": test-agnostic" if test_shift else ""), ""]
    lines += TEST_SHIFT_INTRODUCTION if test_shift else INTRODUCTION
    lines.append(f"Generated by `{command}` from {len(selection.records)} run records.")
    if costs:
        lines += COST_NOTE
    if selection.superseded:
        lines += [
            f"{selection.superseded} older records of the same configuration and seed were left out;",
            "the most recently finished one of each is used.",
        ]
    columns, metrics, order = (
        (SHIFT_COLUMNS, shift_accuracies, MEAN) if test_shift else (COLUMNS, test_metrics, "top1")
    )
    pretraining = any(pretraining_text(record) != "none" for record in selection.records)
    if pretraining:
        lines += PRETRAINING_NOTE
    tables = leaderboard_tables(
        selection.configurations,
        columns=columns,
        metrics=metrics,
        order=order,
        costs=costs,
        pretraining=pretraining,
    )
    fixed = len(IDENTITY_COLUMNS) + pretraining + len(columns) + len(costs) + 1
    if any(len(table.columns) > fixed for table in tables.values()):
        lines += [
            "Each row is one configuration (its seeds pooled); the columns after Epochs are the",
            "settings in which the rows of its table differ.",
        ]
    for title, table in tables.items():
        lines += ["", f"## {title}", "", table.to_markdown(index=False, disable_numparse=True)]
    if not test_shift:
        lines += detection_section(detection)
    return "\n".join(lines) + "\n"


INTRODUCTION = [
    "Test accuracy (%) from the run records, mean ± std over seeds. Many / Medium / Few are mean",
    "per-class accuracies of classes with > 100 / 20–100 / < 20 training images; Overall is top-1.",
]
TEST_SHIFT_INTRODUCTION = [
    "Top-1 test accuracy (%) when the test label distribution is itself long-tailed, mean ± std over",
    "seeds: the test-agnostic protocol of LADE (Hong et al., CVPR 2021) and SADE (Zhang et al.,",
    "NeurIPS 2022). With the classes ranked by training count, the class of rank r keeps",
    "int(n · ρ^(−r/(C−1))) of its n test images (fwd ρ), the ranks reversed for bwd ρ; uniform is the",
    "whole balanced test set (the leaderboard's Overall). Images are drawn per class with the data seed,",
    "the same for every method, from the records' stored predictions. Mean is over the eleven columns.",
]
PRETRAINING_NOTE = [
    "Pretraining: none (trained from scratch on the table's data), the tag of timm's published weights",
    "(their pretraining data, e.g. openai = CLIP's 400M image-text pairs, in21k = ImageNet-21k), or a",
    "local weights file by digest, with what it was trained on where the run declared it: same data",
    "(the table's training images) or external data. Rows on external data saw images beyond the",
    "long-tailed training set.",
]
COST_NOTE = [
    "Params: all parameters of backbone and head; FLOPs/image: one forward pass (torch's flop counter,",
    "a multiply-add is 2 FLOPs); Images seen: training images over all stages; Device-hours: wall time",
    "× processes over all stages. Mean over seeds; – where a record predates cost accounting.",
]
