"""`lt-bench reproduce PAPER`: every row of a paper's tables that lt-bench can run, trained under the
`paper` protocol, next to the number the paper reports.

The rows come from the methods' own data (`Method.paper`, `Method.reported`, `Method.paper_recipes`),
so a plugin that declares them is reproduced like a built-in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lt_bench.config import RunConfig, protocol_recipe
from lt_bench.errors import UserError
from lt_bench.leaderboard import mean_std
from lt_bench.method import METHODS, Method
from lt_bench.protocol import Paper, Reported

SHOTS = ("many", "medium", "few")


@dataclass
class ReproductionRow:
    """One published row and the runs (one per seed) that reproduce it."""

    method: str
    reported: Reported
    configs: list[RunConfig] = field(default_factory=list)


def papers() -> dict[str, tuple[Paper, list[str]]]:
    """Every paper some registered method declares, with the names of those methods."""
    found: dict[str, tuple[Paper, list[str]]] = {}
    for name, method_class in METHODS.items():
        if method_class.paper is not None:
            found.setdefault(method_class.paper.key, (method_class.paper, []))[1].append(name)
    return found


def paper_named(key: str) -> tuple[Paper, list[str]]:
    known = papers()
    if key not in known:
        raise UserError(f"no paper {key!r} to reproduce; choices: {', '.join(sorted(known)) or 'none'}")
    return known[key]


def reported_rows(method_class: type[Method]) -> tuple[Reported, ...]:
    """The rows this class itself declares (a subclass does not inherit its parent's numbers)."""
    return vars(method_class).get("reported", ())


def reproduction_rows(
    key: str,
    datasets: Sequence[str] | None,
    seeds: Sequence[int],
    make_config: Callable[[str, str, float | None, int], RunConfig],
) -> list[ReproductionRow]:
    """The paper's reported rows on `datasets` (all when None) that have a paper recipe, each with
    its run configurations: `make_config(method, dataset, imbalance_ratio, seed)`."""
    _, methods = paper_named(key)
    rows = []
    for method in methods:
        method_class = METHODS.get(method)
        for reported in reported_rows(method_class):
            if datasets is not None and reported.dataset not in datasets:
                continue
            if reported.dataset not in method_class.paper_recipes:
                continue
            row = ReproductionRow(method, reported)
            row.configs = [make_config(method, reported.dataset, reported.imbalance_ratio, s) for s in seeds]
            rows.append(row)
    if not rows:
        wanted = ", ".join(datasets) if datasets else "any dataset"
        raise UserError(
            f"paper {key!r} reports no row lt-bench can run on {wanted}; see lt-bench reproduce --list"
        )
    return rows


def deviations(config: RunConfig) -> list[str]:
    """What this run does differently from the official code: the recipe's known deviations, then
    every recipe field the command line changed."""
    method_class = METHODS.get(config.method)
    recipe = method_class.paper_recipes[config.dataset]
    official = protocol_recipe(config.method, config.dataset, "paper")
    changed = [
        f"{name} {_value(getattr(config, name))} (paper {_value(value)})"
        for name, value in official.items()
        if _value(getattr(config, name)) != _value(value)
    ]
    return [*changed, *recipe.deviations]


def reproduction_markdown(paper: Paper, rows: Iterable[ReproductionRow], records: dict[str, dict]) -> str:
    """The reported-vs-reproduced page: one table row per published row, ours as mean ± std (%)."""
    table, notes = [], {}
    for row in rows:
        finished = [records[c.run_id] for c in row.configs if c.run_id in records]
        ours = pd.DataFrame([r["metrics"]["test"] for r in finished], columns=["top1", *SHOTS])
        reported = row.reported
        table.append(
            {
                "Method": row.method,
                "Dataset": _dataset(reported),
                "Backbone (paper)": reported.backbone or "–",
                "Top-1 reported": f"{reported.top1:.1f}",
                "Top-1 ours": mean_std(ours["top1"], len(finished)),
                "Δ": _difference(ours["top1"], reported.top1),
                "Many / Medium / Few reported": _shots(reported),
                "Many / Medium / Few ours": " / ".join(mean_std(ours[g], len(finished)) for g in SHOTS),
                "Seeds": f"{len(finished)}/{len(row.configs)}",
                "Deviations": ", ".join(
                    str(notes.setdefault(text, len(notes) + 1)) for text in deviations(row.configs[0])
                )
                or "none known",
                "Source": reported.table or "–",
            }
        )
    lines = [
        f"# Reproducing {paper.citation}",
        "",
        f"*{paper.title}*; official code: https://github.com/{paper.repository}",
        "",
        "Top-1 and many / medium / few test accuracy (%). Reported: the paper's table; ours: lt-bench under",
        "`--protocol paper`, mean ± std over seeds (Seeds: finished / asked). Δ = ours − reported.",
        "Deviations: the numbered notes below the table, what these runs do differently from the",
        "official code.",
        f"Generated by `lt-bench reproduce {paper.key}` from the run records.",
        "",
        pd.DataFrame(table).to_markdown(index=False, disable_numparse=True),
        "",
        "Deviations:",
        "",
        *(f"{number}. {text}" for text, number in notes.items()),
    ]
    return "\n".join(lines) + "\n"


def paper_list() -> str:
    """`lt-bench reproduce --list`: each paper, its methods and how many rows it reports."""
    lines = []
    for key, (paper, methods) in sorted(papers().items()):
        count = sum(len(reported_rows(METHODS.get(m))) for m in methods)
        lines.append(f"{key:<18} {paper.citation}: {', '.join(methods)} ({count} reported rows)")
    return "\n".join(lines)


def _dataset(reported: Reported) -> str:
    if reported.imbalance_ratio is None:
        return reported.dataset
    return f"{reported.dataset} IR {reported.imbalance_ratio:g}"


def _shots(reported: Reported) -> str:
    values = [getattr(reported, g) for g in SHOTS]
    if all(v is None for v in values):
        return "–"
    return " / ".join("–" if v is None else f"{v:.1f}" for v in values)


def _difference(ours: pd.Series, reported: float) -> str:
    values = ours.dropna().astype(float)
    return "–" if values.empty else f"{values.mean() * 100 - reported:+.1f}"


def _value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
