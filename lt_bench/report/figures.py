"""Report figures drawn with matplotlib's headless Agg backend from the series in `series.py`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  the backend is chosen before pyplot loads
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import (  # noqa: E402
    EngFormatter,
    FuncFormatter,
    MaxNLocator,
    NullFormatter,
)
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from lt_bench.atomic import write_atomically  # noqa: E402
from lt_bench.report.series import (  # noqa: E402
    Calibration,
    CostPoint,
    KnobCurve,
    PerClassSeries,
    ShotBand,
    TrainingCurve,
)

BAND_COLOURS = {"many": "#dbe9f6", "medium": "#fdf1d6", "few": "#f9dcdc"}
CURVE_LABELS = {
    "many": "many",
    "medium": "medium",
    "few": "few",
    "top1": "overall",
    "balanced_accuracy": "balanced (selection criterion)",
}
PANEL_SIZE = 3.6  # inches per subplot
HEATMAP_ROW = 0.26  # inches per method in the per-class heatmap
ANNOTATED_CLASSES = 30  # the heatmap writes each cell's accuracy up to this many classes
MAX_CLASS_TICKS = 30
LABEL_LINE = 0.16  # inches per label stacked beside the cost panels
DPI = 110


def colour(index: int) -> str:
    """The same colour for a variant in every figure: its position in the setting's variant list."""
    return plt.get_cmap("tab10")(index % 10)


def line_style(index: int) -> str:
    """Solid for the first ten variants, then dashed, then dotted: colours repeat after ten."""
    return ("-", "--", ":")[(index // 10) % 3]


def per_class_figure(series: dict[str, PerClassSeries], bands: Sequence[ShotBand]) -> Figure:
    """Per-class test accuracy as a heatmap: a row per variant, a column per class sorted by training
    count (head on the left), the shot groups as a strip above; readable with any number of methods."""
    labels = list(series)
    first = series[labels[0]]
    grid = np.array([[np.nan if a is None else 100 * a for a in series[label].accuracy] for label in labels])
    classes = len(first.classes)
    figure, axes = plt.subplots(
        figsize=(min(max(6.0, 2.5 + 0.45 * classes), 16.0), 1.6 + HEATMAP_ROW * len(labels)),
        layout="constrained",
    )
    image = axes.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto", interpolation="nearest")
    if classes <= ANNOTATED_CLASSES:
        for (row, column), value in np.ndenumerate(grid):
            if not np.isnan(value):
                axes.text(
                    column,
                    row,
                    f"{value:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="black" if value > 60 else "white",
                )
    start = 0
    for band in bands:
        end = start + band.classes
        axes.add_patch(
            Rectangle(
                (start - 0.5, 1.005),
                band.classes,
                0.06,
                transform=axes.get_xaxis_transform(),
                color=BAND_COLOURS[band.group],
                clip_on=False,
            )  # fmt: skip
        )
        axes.text(
            (start + end - 1) / 2,
            1.035,
            f"{band.group} ({band.classes})",
            ha="center",
            va="center",
            fontsize=8,
            transform=axes.get_xaxis_transform(),
        )
        if start:
            axes.axvline(start - 0.5, color="white", linewidth=2)
        start = end
    ticks = range(0, classes, max(1, classes // MAX_CLASS_TICKS))
    axes.set_xticks(list(ticks), [str(first.counts[c]) for c in ticks], fontsize=7)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("classes sorted by training count (tick: training images of the class)")
    figure.colorbar(image, ax=axes, label="test accuracy of the class (%)", shrink=0.8)
    return figure


def reliability_figure(calibrations: dict[str, Calibration]) -> Figure:
    """One reliability diagram per variant: accuracy per confidence bin against the diagonal."""
    figure, grid = _panels(len(calibrations))
    for index, ((label, calibration), axes) in enumerate(zip(calibrations.items(), grid, strict=True)):
        width = 1 / len(calibration.count)
        edges = [i * width for i in range(len(calibration.count))]
        filled = [i for i, n in enumerate(calibration.count) if n]
        axes.bar(
            [edges[i] for i in filled],
            [calibration.accuracy[i] for i in filled],
            width=width,
            align="edge",
            color=colour(index),
            edgecolor="black",
            linewidth=0.5,
            label="accuracy",
        )
        gaps = [calibration.confidence[i] - calibration.accuracy[i] for i in filled]
        axes.bar(
            [edges[i] for i in filled],
            gaps,
            bottom=[calibration.accuracy[i] for i in filled],
            width=width,
            align="edge",
            color="none",
            edgecolor="black",
            hatch="///",
            alpha=0.6,
            linewidth=0.5,
            label="gap to mean confidence",
        )
        axes.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
        axes.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence",
            aspect="equal",
            title=f"{label}\nECE {100 * calibration.ece:.1f}%, {sum(calibration.count)} images",
        )
        axes.title.set_fontsize(9)
    grid[0].set_ylabel("accuracy")
    grid[0].legend(fontsize=7, loc="upper left")
    return figure


def knob_figure(curves: dict[str, KnobCurve]) -> Figure:
    """Validation accuracy per shot group against each variant's searched knob; choices marked."""
    figure, grid = _panels(len(curves))
    for (label, curve), axes in zip(curves.items(), grid, strict=True):
        for name, values in curve.metrics.items():
            points = [(x, 100 * y) for x, y in zip(curve.values, values, strict=True) if y is not None]
            axes.plot(
                [x for x, _ in points],
                [y for _, y in points],
                marker=".",
                label=CURVE_LABELS[name],
                linestyle="--" if name == "balanced_accuracy" else "-",
            )
        choices = []
        for chosen in sorted(set(curve.selected)):
            axes.axvline(chosen, color="black", linestyle=":", linewidth=1.2)
            choices.append(f"{chosen:g} ×{curve.selected.count(chosen)}")
        title = f"{label}: {curve.knob} on validation\nchosen (× seeds): {', '.join(choices)}"
        axes.set(xlabel=curve.knob, ylim=(-3, 103), title=title)
        axes.title.set_fontsize(9)
        axes.grid(True, alpha=0.3)
    grid[0].set_ylabel("validation accuracy (%)")
    handles, labels = grid[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=7)
    return figure


def curves_figure(curves: dict[str, tuple[int, TrainingCurve]]) -> Figure:
    """Training loss, and training top-1 (solid) with validation balanced accuracy (dashed, dots),
    against epoch; one colour per variant (its position in the setting), means over seeds."""
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for label, (index, curve) in curves.items():
        style = {"color": colour(index), "linewidth": 1.3}
        loss_axes.plot(curve.epochs, curve.loss, linestyle=line_style(index), label=label, **style)
        accuracy_axes.plot(curve.epochs, [100 * a for a in curve.train_top1], **style)
        accuracy_axes.plot(
            curve.val_epochs, [100 * a for a in curve.val_balanced_accuracy], "--", marker=".", **style
        )
    loss_axes.set(xlabel="epoch", ylabel="training loss (mean over the epoch)", yscale="log")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy (%)", ylim=(-3, 103))
    accuracy_axes.plot([], [], "k-", label="training top-1")
    accuracy_axes.plot([], [], "k--", marker=".", label="validation balanced accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(True, which="both", alpha=0.3)
    figure.legend(*loss_axes.get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    accuracy_axes.legend(fontsize=7, loc="lower right")
    return figure


def cost_figure(points: dict[str, tuple[int, CostPoint]]) -> Figure:
    """Test top-1 against training compute (forward FLOPs × images seen) and against device-hours;
    each panel's labels stacked without overlap beside it, a thin line to each point."""
    height = max(4.4, 1.4 + LABEL_LINE * len(points))
    figure, grid = plt.subplots(1, 2, figsize=(13, height), layout="constrained")
    accuracy = {label: 100 * point.top1 for label, (_, point) in points.items()}
    low, high = min(accuracy.values()), max(accuracy.values())
    margin = max(1.0, 0.05 * (high - low))
    for axes in grid:
        axes.set_ylabel("test top-1 (%)")
        axes.set_xlabel("cost")  # the real labels below; this one takes their room in the layout
    figure.get_layout_engine().execute(figure)
    axes_height = grid[0].get_position().height * height  # inches
    spread = label_positions(
        accuracy, (high - low + 2 * margin) * LABEL_LINE / axes_height, low - margin, high + margin
    )
    for axes, cost in zip(grid, ("training_flops", "device_hours"), strict=True):
        beside = blended_transform_factory(axes.transAxes, axes.transData)
        for label, (index, point) in points.items():
            x = getattr(point, cost)
            axes.scatter([x], [accuracy[label]], color=colour(index), s=30, zorder=3)
            axes.annotate(
                label,
                (x, accuracy[label]),
                xytext=(1.03, spread[label]),
                textcoords=beside,
                fontsize=7,
                va="center",
                color=colour(index),
                arrowprops={"arrowstyle": "-", "color": colour(index), "linewidth": 0.5, "alpha": 0.6},
            )
        _plain_cost_axis(
            axes, [getattr(point, cost) for _, point in points.values()], cost == "training_flops"
        )
        axes.set_ylim(low - margin, high + margin)
        axes.grid(True, which="both", alpha=0.3)
    grid[0].set_xlabel("training compute: forward FLOPs per image × images seen")
    grid[1].set_xlabel("device-hours, all stages")
    return figure


def label_positions(values: dict[str, float], gap: float, low: float, high: float) -> dict[str, float]:
    """Heights in [low, high] for labels beside the points, in the points' order, at least `gap`
    apart: each as near its value as the stack allows (evenly spread when they cannot all fit)."""
    order = sorted(values, key=lambda label: (values[label], label))
    if gap * (len(order) - 1) > high - low:
        step = (high - low) / max(len(order) - 1, 1)
        return {label: low + step * index for index, label in enumerate(order)}
    placed: list[float] = []
    for label in order:  # upwards: no label below `low` or closer than `gap` to the one beneath
        placed.append(max(values[label], low, placed[-1] + gap) if placed else max(values[label], low))
    for index in reversed(range(len(placed))):  # downwards: none above `high` or the one above
        ceiling = high if index == len(placed) - 1 else placed[index + 1] - gap
        placed[index] = min(placed[index], ceiling)
    return dict(zip(order, placed, strict=True))


def _plain_cost_axis(axes: Axes, costs: Sequence[float], prefixed: bool) -> None:
    """A log axis over more than a decade, a linear one over less; plain tick labels, with SI
    prefixes where `prefixed` ('690G')."""
    if max(costs) > 10 * min(costs):
        axes.set_xscale("log")
        axes.xaxis.set_minor_formatter(NullFormatter())
    else:
        axes.xaxis.set_major_locator(MaxNLocator(5))
        padding = 0.05 * (max(costs) - min(costs)) or 0.05 * max(costs)
        axes.set_xlim(min(costs) - padding, max(costs) + padding)
    axes.xaxis.set_major_formatter(EngFormatter(sep="") if prefixed else FuncFormatter(lambda x, _: f"{x:g}"))


def _panels(count: int) -> tuple[Figure, list]:
    columns = min(count, 3)
    rows = -(-count // columns)
    figure, grid = plt.subplots(
        rows,
        columns,
        figsize=(PANEL_SIZE * columns, PANEL_SIZE * rows + 0.3),
        layout="constrained",
        squeeze=False,
    )
    panels = list(grid.flat)
    for unused in panels[count:]:
        unused.set_visible(False)
    return figure, panels[:count]


def save(figure: Figure, path: Path) -> None:
    """Write the figure as PNG atomically, without a timestamp: reruns give the same bytes."""
    write_atomically(
        path,
        lambda handle: figure.savefig(handle, format="png", dpi=DPI, metadata={"Software": None}),
    )
    plt.close(figure)


def trials_figure(studies: dict[str, tuple[list[tuple[int, float | None]], int]]) -> Figure:
    """Per tuned method, each trial's validation balanced accuracy by trial number (pruned trials as
    crosses at the bottom), the best so far as a step line and the chosen trial circled."""
    figure, grid = _panels(len(studies))
    for (label, (scores, best)), axes in zip(studies.items(), grid, strict=True):
        finished = [(number, 100 * score) for number, score in scores if score is not None]
        pruned = [number for number, score in scores if score is None]
        axes.plot([n for n, _ in finished], [s for _, s in finished], "o", markersize=4, label="trial")
        running, best_so_far = [], -math.inf
        for _, score in finished:
            best_so_far = max(best_so_far, score)
            running.append(best_so_far)
        axes.step(
            [n for n, _ in finished], running, where="post", color="black", linewidth=1, label="best so far"
        )
        if pruned:
            axes.plot(pruned, [0] * len(pruned), "x", color="grey", label="pruned")
        chosen = [s for n, s in finished if n == best]
        axes.plot(
            [best] * len(chosen), chosen, "o", markersize=10, fillstyle="none", color="red", label="chosen"
        )
        axes.set(xlabel="trial (0: the untuned recipe)", ylim=(-3, 103), title=label)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.title.set_fontsize(9)
        axes.grid(True, alpha=0.3)
    grid[0].set_ylabel("validation balanced accuracy (%)")
    handles, labels = grid[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=7)
    return figure
