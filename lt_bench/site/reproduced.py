"""A dataset's reported-against-reproduced table: each published row a method declares for the
dataset (`Method.reported`, as `lt-bench reproduce` uses them) next to its `--protocol paper` runs."""

from __future__ import annotations

from lt_bench.method import METHODS
from lt_bench.report.runs import DatasetRuns
from lt_bench.reproduce import SHOTS, reported_rows
from lt_bench.site import html
from lt_bench.site.tables import summarise

HEADERS = [
    "Method",
    "Imbalance ratio",
    "Backbone (paper)",
    "Top-1 reported",
    "Top-1 ours",
    "Δ",
    "Many / Medium / Few reported",
    "Many / Medium / Few ours",
    "Seeds",
    "Source",
]


def reproduced_table(runs: DatasetRuns) -> str:
    """The table as HTML, or a sentence saying that no method reports numbers on the dataset."""
    rows = []
    for method in sorted(METHODS.names()):
        for reported in reported_rows(METHODS.get(method)):
            if reported.dataset != runs.dataset:
                continue
            ours = [
                run
                for setting, variants in runs.settings.items()
                if setting.protocol == "paper" and setting.imbalance_ratio == reported.imbalance_ratio
                for variant in variants.values()
                if variant.method == method
                for run in variant.runs
            ]
            tests = [run["metrics"]["test"] for run in ours]
            top1 = summarise([test["top1"] for test in tests])
            shots = [summarise([test.get(group) for test in tests]) for group in SHOTS]
            reported_shots = [getattr(reported, group) for group in SHOTS]
            rows.append(
                [
                    method,
                    "–" if reported.imbalance_ratio is None else f"{reported.imbalance_ratio:g}",
                    reported.backbone or "–",
                    f"{reported.top1:.1f}",
                    top1.text,
                    "–" if top1.mean is None else f"{top1.mean - reported.top1:+.1f}",
                    " / ".join("–" if v is None else f"{v:.1f}" for v in reported_shots),
                    " / ".join(s.text for s in shots),
                    str(len(ours)),
                    reported.table or "–",
                ]
            )
    if not rows:
        return f"<p>No registered method reports published numbers on {runs.dataset}.</p>"
    return (
        "<p>Published numbers (%) against this dataset's runs under <code>--protocol paper</code>, "
        "mean ± std over seeds; Δ = ours − reported. <code>lt-bench reproduce PAPER</code> runs the "
        "missing rows.</p>" + html.table(HEADERS, rows)
    )
