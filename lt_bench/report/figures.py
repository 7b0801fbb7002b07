"""Report figures drawn with matplotlib's headless Agg backend from the series in `series.py`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  the backend is chosen before pyplot loads
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FormatStrFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

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
DPI = 110


def colour(index: int) -> str:
    """The same colour for a variant in every figure: its position in the setting's variant list."""
    return plt.get_cmap("tab10")(index % 10)


def line_style(index: int) -> str:
    """Solid for the first ten variants, then dashed, then dotted: colours repeat after ten."""
    return ("-", "--", ":")[(index // 10) % 3]


def per_class_figure(series: dict[str, PerClassSeries], bands: Sequence[ShotBand]) -> Figure:
    """Per-class test accuracy against training images per class (log scale, head on the left)."""
    figure, axes = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    for band in bands:
        axes.axvspan(band.low, band.high, color=BAND_COLOURS[band.group], zorder=0)
        axes.text(
            (band.low * band.high) ** 0.5,
            1.02,
            f"{band.group} ({band.classes})",
            ha="center",
            va="bottom",
            fontsize=8,
            transform=axes.get_xaxis_transform(),
        )
    for index, (label, values) in enumerate(series.items()):
        points = [(n, 100 * a) for n, a in zip(values.counts, values.accuracy, strict=True) if a is not None]
        axes.scatter([n for n, _ in points], [a for _, a in points], s=14, color=colour(index), zorder=3)
        # Classes with the same count are joined through their mean, so the line never doubles back.
        by_count: dict[int, list[float]] = {}
        for count, accuracy in points:
            by_count.setdefault(count, []).append(accuracy)
        axes.plot(
            list(by_count),
            [sum(a) / len(a) for a in by_count.values()],
            linewidth=1.4,
            color=colour(index),
            linestyle=line_style(index),
            label=label,
        )
    axes.set_xscale("log")
    axes.set_xlim(bands[0].high, bands[-1].low)
    axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    axes.set_ylim(-3, 103)
    axes.set_xlabel("training images of the class (log scale; classes sorted by count)")
    axes.set_ylabel("test accuracy of the class (%)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="lower left")
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
    loss_axes.legend(fontsize=7)
    accuracy_axes.legend(fontsize=7, loc="lower right")
    return figure


def cost_figure(points: dict[str, tuple[int, CostPoint]]) -> Figure:
    """Test top-1 against training compute (forward FLOPs × images seen) and against device-hours."""
    figure, grid = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    for label, (index, point) in points.items():
        for axes, x in zip(grid, (point.training_flops, point.device_hours), strict=True):
            axes.scatter([x], [100 * point.top1], color=colour(index), s=30, zorder=3)
            axes.annotate(label, (x, 100 * point.top1), fontsize=7, xytext=(4, 2), textcoords="offset points")
    grid[0].set(xlabel="training compute: forward FLOPs per image × images seen (log)", xscale="log")
    grid[1].set(xlabel="device-hours, all stages (log)", xscale="log")
    for axes in grid:
        axes.set_ylabel("test top-1 (%)")
        axes.grid(True, which="both", alpha=0.3)
    return figure


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
