"""The committed reports: `results/report/` regenerates byte for byte from the committed records,
and their figures stay readable with every method (no overlapping labels, plain tick labels)."""

import re
from itertools import combinations
from pathlib import Path

import pytest
from matplotlib.text import Text

from lt_bench.records import iter_records
from lt_bench.report import figures, write_report
from lt_bench.report.runs import group_runs
from lt_bench.report.series import cost_point, per_class_series, shot_bands

RESULTS = Path(__file__).resolve().parents[1] / "results"
PLAIN_TICK = re.compile(r"^[0-9.]+[kMGT]?$")  # '690G', '0.05': no '6.9×10^11', no mathtext


@pytest.fixture(scope="module")
def records() -> list[dict]:
    found = list(iter_records(RESULTS))
    if not found:
        pytest.skip("no committed run records")
    return found


def committed_datasets() -> list[str]:
    return sorted(page.stem for page in (RESULTS / "report").glob("*.md"))


@pytest.mark.parametrize("dataset", committed_datasets())
def test_the_committed_report_regenerates_byte_for_byte(records, dataset, tmp_path):
    write_report(records, dataset, tmp_path)
    written = tmp_path / "report"
    for path in [written / f"{dataset}.md", *sorted((written / dataset).iterdir())]:
        committed = RESULTS / "report" / path.relative_to(written)
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: rerun lt-bench report"
    assert {p.name for p in (RESULTS / "report" / dataset).iterdir()} == {
        p.name for p in (written / dataset).iterdir()
    }


@pytest.mark.parametrize("dataset", committed_datasets())
def test_the_committed_cost_figures_labels_do_not_overlap_and_ticks_are_plain(records, dataset):
    for variants in group_runs(records, dataset).settings.values():
        points = {label: (index, cost_point(v)) for index, (label, v) in enumerate(variants.items())}
        assert len(points) >= 20  # every method of the committed boards
        figure = figures.cost_figure(points)
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        for axes in figure.axes:
            labels = [text for text in axes.texts if text.get_text() in points]
            assert sorted(text.get_text() for text in labels) == sorted(points)
            boxes = [Text.get_window_extent(text, renderer) for text in labels]  # the text, not its line
            overlapping = [
                (a.get_text(), b.get_text())
                for (a, box_a), (b, box_b) in combinations(zip(labels, boxes, strict=True), 2)
                if box_a.overlaps(box_b)
            ]
            assert overlapping == []
            ticks = [tick.get_text() for tick in axes.get_xticklabels() if tick.get_text()]
            assert ticks and all(PLAIN_TICK.match(tick) for tick in ticks), ticks
        figures.plt.close(figure)


@pytest.mark.parametrize("dataset", committed_datasets())
def test_the_committed_per_class_figure_has_a_row_per_method(records, dataset):
    for variants in group_runs(records, dataset).settings.values():
        first = next(iter(variants.values())).runs[0]
        series = {label: per_class_series(v) for label, v in variants.items()}
        figure = figures.per_class_figure(series, shot_bands(first["class_counts"], first["shot_groups"]))
        axes = figure.axes[0]
        assert axes.images[0].get_array().shape == (len(variants), len(first["class_counts"]))
        assert [tick.get_text() for tick in axes.get_yticklabels()] == list(variants)
        figures.plt.close(figure)
