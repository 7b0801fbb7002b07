"""The site's HTML pages: the index, one page per dataset, one per run. Plain HTML that reads
without scripts; `assets/site.js` adds sorting, filtering and the Plotly charts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from lt_bench.report.bootstrap import CONFIDENCE, RESAMPLES, RNG_SEED, Interval
from lt_bench.report.page import REFERENCE_BASELINE
from lt_bench.site.tables import INTERVAL_METRICS, METRIC_COLUMNS, BoardRow

GENERATOR = "lt-bench site"  # marks a folder as a site a regeneration may clean up
# Leaderboard columns a reader filters on: header → the row's text.
FILTERS = {
    "protocol": lambda row: row.setting.protocol,
    "ratio": lambda row: "–" if row.setting.imbalance_ratio is None else f"{row.setting.imbalance_ratio:g}",
    "backbone": lambda row: row.setting.backbone,
    "epochs": lambda row: str(row.setting.epochs),
    "pretraining": lambda row: row.pretraining,
}


def page(title: str, body: str, *, root: str, data_script: str | None = None) -> str:
    """A whole page: `root` is the relative path to the site's top folder ('' or '../')."""
    scripts = [f"{root}assets/plotly.min.js"]
    scripts += [data_script] if data_script else []
    scripts.append(f"{root}assets/site.js")
    tags = "\n".join(f'<script src="{escape(src)}"></script>' for src in scripts)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{GENERATOR}">
<title>{escape(title)} · lt-bench</title>
<link rel="stylesheet" href="{root}assets/site.css">
</head>
<body>
<header><a href="{root}index.html">lt-bench results</a></header>
<main>
{body}
</main>
{tags}
</body>
</html>
"""


def data_script(figures: dict[str, Any]) -> str:
    """The page's charts as a script (a data file that also loads from file://, where fetch cannot)."""
    text = json.dumps(figures, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return f"window.LT_BENCH_FIGURES = {text};\n"


def chart(figure_id: str, caption: str) -> str:
    division = f'<div class="chart" data-figure="{escape(figure_id)}"></div>'
    return f"<figure>{division}<figcaption>{caption}</figcaption></figure>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, escaped: bool = False) -> str:
    """A simple table; cells are escaped unless `escaped` says they are HTML already."""
    cell = (lambda text: text) if escaped else escape
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{cell(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="plain"><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>'


def leaderboard(rows: list[BoardRow]) -> str:
    """The sortable, filterable table; each row expands to its intervals against CE and its runs."""
    filters = "".join(_filter(name, sorted({get(row) for row in rows})) for name, get in FILTERS.items())
    headers = ['<th data-type="text">Method</th>']
    headers += [f'<th data-type="text">{name.capitalize()}</th>' for name in FILTERS]
    headers += [
        f'<th data-type="number" data-column="{key}">{title}</th>' for key, title in METRIC_COLUMNS.items()
    ]
    headers += [
        f'<th data-type="number">Δ top-1 vs {REFERENCE_BASELINE}</th>',
        '<th data-type="number">Seeds</th>',
    ]
    body = "\n".join(_board_row(row, len(headers)) for row in rows)
    return f"""<div class="filters">{filters}<span class="shown"></span></div>
<div class="board-wrap"><table class="board">
<thead><tr>{"".join(headers)}</tr></thead>
<tbody>
{body}
</tbody>
</table></div>
<p class="note">Test accuracy (%), mean ± std over seeds (hover a cell for each seed's value); ECE in %,
15 confidence bins; Shift mean: top-1 averaged over the eleven test label distributions. Click a header
to sort, a row to expand it: its paired differences against {REFERENCE_BASELINE} in the same setting
({CONFIDENCE:.0%} paired bootstrap, {RESAMPLES} replicates, seed {RNG_SEED}) and its runs.</p>"""


def _filter(name: str, values: list[str]) -> str:
    options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return (
        f'<label>{name} <select data-filter="{name}"><option value="">all</option>{options}</select></label>'
    )


def _board_row(row: BoardRow, width: int) -> str:
    attributes = " ".join(f'data-{name}="{escape(get(row))}"' for name, get in FILTERS.items())
    cells = [f'<td data-value="{escape(row.variant.label)}">{escape(row.variant.label)}</td>']
    cells += [f'<td data-value="{escape(get(row))}">{escape(get(row))}</td>' for get in FILTERS.values()]
    for key in METRIC_COLUMNS:
        summary = row.metrics[key]
        value = "" if summary.mean is None else f"{summary.mean:.4f}"
        seeds = ", ".join(f"{v:.1f}" for v in summary.values)
        cells.append(f'<td data-value="{value}" title="seeds: {seeds}">{summary.text}</td>')
    top1 = row.intervals.get("top1")
    cells.append(
        f'<td data-value="{"" if top1 is None else f"{100 * top1.estimate:.4f}"}"'
        f' title="{REFERENCE_BASELINE}-paired {CONFIDENCE:.0%} interval">{interval_html(top1)}</td>'
    )
    cells.append(f'<td data-value="{len(row.variant.runs)}">{len(row.variant.runs)}</td>')
    return (
        f'<tr class="entry" tabindex="0" {attributes}>{"".join(cells)}</tr>\n'
        f'<tr class="details" hidden {attributes}><td colspan="{width}">{_details(row)}</td></tr>'
    )


def _details(row: BoardRow) -> str:
    runs = ", ".join(
        f'<a href="runs/{escape(run["run_id"])}.html">seed {run["seed"]}</a>' for run in row.variant.runs
    )
    parts = [f"<p>Setting: {escape(row.setting.title)}. Runs: {runs}.</p>"]
    if row.intervals:
        parts.append(
            f"<p>Paired differences against {REFERENCE_BASELINE} ({row.seed_pairs} seed pairs), "
            "percentage points:</p>"
        )
        parts.append(
            table(
                [f"{name}" for name in INTERVAL_METRICS],
                [[interval_html(row.intervals.get(name)) for name in INTERVAL_METRICS]],
                escaped=True,
            )
        )
    return "".join(parts)


def interval_html(interval: Interval | None) -> str:
    """'+1.2 [−0.3, +2.5]', bold where the interval excludes zero; '–' when there is none."""
    if interval is None:
        return "–"
    estimate = f"{100 * interval.estimate:+.1f}"
    if interval.excludes_zero:
        estimate = f"<strong>{estimate}</strong>"
    return f"{estimate} [{100 * interval.low:+.1f}, {100 * interval.high:+.1f}]"
