"""Plotly figures (as plain JSON-ready dicts) of a setting's variants and of one run, from the same
series as the report's static figures (`report.series`)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from lt_bench.report.runs import Record, Variant
from lt_bench.report.series import (
    cost_point,
    per_class_series,
    pooled_calibration,
    shot_bands,
    training_curve,
)
from lt_bench.test_shift import SHIFTS, shift_accuracies

Figure = dict[str, Any]
PALETTE = qualitative.Dark24  # 24 distinguishable colours: one per variant of a setting
BAND_COLOURS = {
    "many": "rgba(31,119,180,0.12)",
    "medium": "rgba(255,187,51,0.15)",
    "few": "rgba(214,39,40,0.12)",
}
RELIABILITY_COLUMNS = 6
FONT = {"family": "system-ui, sans-serif", "size": 12}


def colour(index: int) -> str:
    """The same colour for a variant in every chart of its setting: its position in the setting."""
    return PALETTE[index % len(PALETTE)]


def percent(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def per_class_heatmap(variants: dict[str, Variant]) -> Figure:
    """Methods × classes test accuracy (mean over seeds), classes by training count, shot bands above."""
    first = next(iter(variants.values())).runs[0]
    series = {label: per_class_series(variant) for label, variant in variants.items()}
    classes = next(iter(series.values())).classes
    counts = next(iter(series.values())).counts
    group_of = {c: group for group, members in first["shot_groups"].items() for c in members}
    columns = [f"class {c} ({n})" for c, n in zip(classes, counts, strict=True)]
    labels = list(series)
    heatmap = go.Heatmap(
        z=[[percent(a) for a in series[label].accuracy] for label in labels],
        x=columns,
        y=labels,
        zmin=0,
        zmax=100,
        colorscale="Viridis",
        colorbar={"title": {"text": "test acc. %"}},
        customdata=[[group_of.get(c, "") for c in classes] for _ in labels],
        hovertemplate="%{y}<br>%{x}, %{customdata}<br>accuracy %{z:.1f}%<extra></extra>",
    )
    shapes, annotations = [], []
    start = 0
    for band in shot_bands(first["class_counts"], first["shot_groups"]):
        end = start + band.classes
        shapes.append(_band_shape(start - 0.5, end - 0.5, BAND_COLOURS[band.group]))
        annotations.append(
            {
                "x": (start + end - 1) / 2,
                "y": 1.0,
                "xref": "x",
                "yref": "paper",
                "yanchor": "bottom",
                "text": f"{band.group} ({band.classes})",
                "showarrow": False,
            }
        )
        start = end
    layout = _layout(
        height=140 + 22 * len(labels),
        xaxis={
            "title": {"text": "class (training images), most images first"},
            "tickangle": -45,
            "automargin": True,
        },
        yaxis={"autorange": "reversed", "automargin": True},
        shapes=shapes,
        annotations=annotations,
    )
    return _figure([heatmap], layout)


def _band_shape(low: float, high: float, fill: str) -> dict[str, Any]:
    return {
        "type": "rect",
        "xref": "x",
        "yref": "paper",
        "x0": low,
        "x1": high,
        "y0": 1.0,
        "y1": 1.06,
        "fillcolor": fill,
        "line": {"width": 0},
    }


def shift_curves(variants: dict[str, Variant]) -> Figure:
    """Top-1 (mean over seeds) on each test label shift, forward-50 to backward-50, one line a variant."""
    traces = []
    for index, (label, variant) in enumerate(variants.items()):
        accuracies = [shift_accuracies(run) for run in variant.runs]
        means = [percent(sum(a[shift.name] for a in accuracies) / len(accuracies)) for shift in SHIFTS]
        traces.append(
            go.Scatter(
                x=[shift.title for shift in SHIFTS],
                y=means,
                name=label,
                mode="lines+markers",
                line={"color": colour(index)},
                hovertemplate="%{x}: %{y:.1f}%",
            )
        )
    layout = _layout(
        height=legend_height(len(variants)),
        xaxis={"title": {"text": "test label distribution (fwd: long-tailed as training; bwd: inverted)"}},
        yaxis={"title": {"text": "test top-1 (%)"}},
    )
    return _figure(traces, layout)


def reliability(variants: dict[str, Variant]) -> Figure:
    """Small multiples, one reliability diagram per variant: accuracy against mean confidence per
    confidence bin, bins pooled over seeds; the dashed diagonal is perfect calibration."""
    columns = min(len(variants), RELIABILITY_COLUMNS)
    rows = -(-len(variants) // columns)
    pooled = {label: pooled_calibration(variant) for label, variant in variants.items()}
    figure = make_subplots(
        rows,
        columns,
        shared_xaxes=True,
        shared_yaxes=True,
        subplot_titles=[f"{label}<br>ECE {100 * p.ece:.1f}%" for label, p in pooled.items()],
        horizontal_spacing=0.02,
        vertical_spacing=0.5 / rows,
    )
    for index, (label, calibration) in enumerate(pooled.items()):
        row, column = index // columns + 1, index % columns + 1
        filled = [i for i, n in enumerate(calibration.count) if n]
        figure.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line={"color": "grey", "dash": "dash", "width": 1},
                hoverinfo="skip",
                showlegend=False,
            ),
            row,
            column,
        )
        figure.add_trace(
            go.Scatter(
                x=[round(calibration.confidence[i], 4) for i in filled],
                y=[round(calibration.accuracy[i], 4) for i in filled],
                customdata=[calibration.count[i] for i in filled],
                name=label,
                mode="lines+markers",
                line={"color": colour(index)},
                marker={"size": 5},
                showlegend=False,
                hovertemplate=f"{label}<br>confidence %{{x:.2f}}, accuracy %{{y:.2f}}, %{{customdata}} images"
                "<extra></extra>",
            ),
            row,
            column,
        )
    figure.update_xaxes(range=[0, 1], dtick=0.5)
    figure.update_yaxes(range=[0, 1], dtick=0.5)
    figure.update_annotations(font={"size": 11})
    figure.update_layout(_layout(height=60 + 190 * rows))
    figure.add_annotation(
        text="mean confidence of the bin",
        x=0.5,
        y=-0.06 * 4 / (rows + 3),
        xref="paper",
        yref="paper",
        showarrow=False,
        yanchor="top",
    )
    figure.add_annotation(
        text="accuracy of the bin",
        x=-0.04,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        textangle=-90,
        xanchor="right",
    )
    return _plain(figure)


def cost_frontier(variants: dict[str, Variant]) -> Figure | None:
    """Test top-1 against training compute (left) and device-hours (right); each panel's Pareto
    frontier labelled, every point named on hover."""
    points = {
        label: (index, point)
        for index, (label, variant) in enumerate(variants.items())
        if (point := cost_point(variant)) is not None
    }
    if not points:
        return None
    figure = make_subplots(1, 2, shared_yaxes=True, horizontal_spacing=0.04)
    for column, cost in ((1, "training_flops"), (2, "device_hours")):
        costs = {label: (getattr(point, cost), point.top1) for label, (_, point) in points.items()}
        frontier = pareto_frontier(costs)
        figure.add_trace(
            go.Scatter(
                x=[costs[label][0] for label in frontier],
                y=[percent(costs[label][1]) for label in frontier],
                name="frontier",
                mode="lines",
                line={"color": "grey", "shape": "hv"},
                hoverinfo="skip",
                showlegend=column == 1,
            ),
            1,
            column,
        )
        for label, (index, point) in points.items():
            on_frontier = label in frontier
            figure.add_trace(
                go.Scatter(
                    x=[costs[label][0]],
                    y=[percent(point.top1)],
                    name=label,
                    legendgroup=label,
                    showlegend=column == 1,
                    mode="markers+text" if on_frontier else "markers",
                    text=[label] if on_frontier else None,
                    textposition="middle right",
                    marker={"color": colour(index), "size": 10 if on_frontier else 7},
                    customdata=[[f"{point.training_flops:.3g}", f"{point.device_hours:.3g}"]],
                    hovertemplate=f"{label}<br>%{{customdata[0]}} FLOPs, %{{customdata[1]}} device-hours"
                    "<br>top-1 %{y:.1f}%<extra></extra>",
                ),
                1,
                column,
            )
    figure.update_xaxes(
        type="log",
        exponentformat="SI",
        row=1,
        col=1,
        title={"text": "training compute: forward FLOPs per image × images seen (log)"},
    )
    figure.update_xaxes(type="log", row=1, col=2, title={"text": "device-hours, all stages (log)"})
    figure.update_yaxes(title={"text": "test top-1 (%)"}, row=1, col=1)
    figure.update_layout(_layout(height=legend_height(len(points) + 1)))
    return _plain(figure)


def pareto_frontier(points: dict[str, tuple[float, float]]) -> list[str]:
    """The labels no other point beats on both cost (lower) and accuracy (higher), cheapest first."""
    frontier, best = [], float("-inf")
    for label, (_, accuracy) in sorted(points.items(), key=lambda item: (item[1][0], -item[1][1])):
        if accuracy > best:
            frontier.append(label)
            best = accuracy
    return frontier


def training_curves(variants: dict[str, Variant]) -> Figure | None:
    """Training loss (left) and validation balanced accuracy (right) per epoch, mean over seeds."""
    traces = []
    for index, (label, variant) in enumerate(variants.items()):
        curve = training_curve(variant)
        if curve is None:
            continue
        style = {"line": {"color": colour(index)}, "legendgroup": label}
        traces.append(go.Scatter(x=curve.epochs, y=_rounded(curve.loss), name=label, mode="lines", **style))
        traces.append(
            go.Scatter(
                x=curve.val_epochs,
                y=[percent(a) for a in curve.val_balanced_accuracy],
                name=label,
                mode="lines+markers",
                xaxis="x2",
                yaxis="y2",
                showlegend=False,
                **style,
            )
        )
    if not traces:
        return None
    layout = _layout(
        height=legend_height(len(variants)),
        xaxis={"title": {"text": "epoch"}, "domain": [0, 0.45]},
        yaxis={"title": {"text": "training loss (log)"}, "type": "log"},
        xaxis2={"title": {"text": "epoch"}, "domain": [0.55, 1], "anchor": "y2"},
        yaxis2={"title": {"text": "validation balanced accuracy (%)"}, "anchor": "x2"},
    )
    return _figure(traces, layout)


def run_curves(record: Record) -> Figure | None:
    """One run's training loss, training top-1 and validation balanced accuracy per epoch."""
    curve = training_curve(Variant(record["run_id"], record["method"], [record]))
    if curve is None:
        return None
    traces = [
        go.Scatter(x=curve.epochs, y=_rounded(curve.loss), name="training loss", mode="lines"),
        go.Scatter(
            x=curve.epochs,
            y=[percent(a) for a in curve.train_top1],
            name="training top-1 (%)",
            mode="lines",
            yaxis="y2",
        ),
        go.Scatter(
            x=curve.val_epochs,
            y=[percent(a) for a in curve.val_balanced_accuracy],
            name="validation balanced accuracy (%)",
            mode="lines+markers",
            yaxis="y2",
        ),
    ]
    layout = _layout(
        height=380,
        xaxis={"title": {"text": "epoch"}},
        yaxis={"title": {"text": "training loss (log)"}, "type": "log"},
        yaxis2={"title": {"text": "accuracy (%)"}, "overlaying": "y", "side": "right", "range": [0, 100]},
    )
    return _figure(traces, layout)


def legend_height(entries: int) -> int:
    """Pixels for a chart whose legend lists `entries` lines without scrolling."""
    return max(440, 160 + 22 * entries)


def _rounded(values: list[float | None]) -> list[float | None]:
    return [None if v is None else round(v, 5) for v in values]


def _layout(**settings: Any) -> dict[str, Any]:
    return {"font": FONT, "margin": {"t": 40, "r": 20}, "legend": {"font": {"size": 11}}, **settings}


def _figure(traces: list[go.Scatter | go.Heatmap], layout: dict[str, Any]) -> Figure:
    return _plain(go.Figure(traces, layout))


def _plain(figure: go.Figure) -> Figure:
    """The figure as Plotly validated it, without the Python library's default template (plotly.js
    styles it with its own defaults)."""
    plain = figure.to_plotly_json()
    plain["layout"].pop("template", None)
    return plain
