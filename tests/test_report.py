"""`lt-bench report` on real tiny runs: the numbers behind each figure and table equal the records."""

import re
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from lt_bench.cli import main
from lt_bench.evaluation import expected_calibration_error
from lt_bench.records import iter_records
from lt_bench.report import figures
from lt_bench.report.bootstrap import PairedRun, paired_bootstrap
from lt_bench.report.runs import Variant, group_runs
from lt_bench.report.series import (
    cost_point,
    knob_curve,
    per_class_series,
    pooled_calibration,
    shot_bands,
    training_curve,
)
from lt_bench.test_shift import shift_accuracies


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("report")
    assert (
        main(
            [
                *"sweep --methods ce causal_tde --dataset digits_lt --seeds 0 1 --epochs 1 --output".split(),
                str(output),
            ]
        )
        == 0
    )
    return output


@pytest.fixture(scope="module")
def variants(results) -> dict[str, Variant]:
    runs = group_runs(iter_records(results), "digits_lt")
    (setting,) = runs.settings
    assert (setting.backbone, setting.epochs, setting.imbalance_ratio) == ("lt_small_cnn", 1, 10.0)
    return runs.settings[setting]


def test_runs_are_grouped_by_method_with_one_run_per_seed(variants):
    assert list(variants) == ["causal_tde", "ce"]
    for variant in variants.values():
        assert [run["seed"] for run in variant.runs] == [0, 1]


def test_an_older_record_of_the_same_run_is_superseded_and_fixed_knobs_make_their_own_line(results):
    records = list(iter_records(results))
    ce = next(r for r in records if r["method"] == "ce" and r["seed"] == 0)
    older = {
        **ce,
        "run_id": "older-ce",
        "finished_at": "2000-01-01T00:00:00+00:00",
        "per_class_accuracy": None,
    }
    tde = next(r for r in records if r["method"] == "causal_tde" and r["seed"] == 0)
    fixed = {**tde, "run_id": "fixed-alpha", "config": {**tde["config"], "knobs": {"alpha": 2.0}}}
    runs = group_runs([older, *records, fixed], "digits_lt")
    assert runs.superseded == 1 and len(runs.records) == 5
    (variants,) = runs.settings.values()
    assert list(variants) == ["causal_tde", "causal_tde (knobs alpha=2)", "ce"]
    assert variants["ce"].run_for(0, 0) is ce and variants["causal_tde (knobs alpha=2)"].runs == [fixed]
    for order in ([older, *records], [*records, older]):  # the newer one wins in either order
        assert group_runs(order, "digits_lt").settings[next(iter(runs.settings))]["ce"].run_for(0, 0) is ce


def test_per_class_series_is_the_records_per_class_accuracy_sorted_by_count(variants):
    runs = variants["ce"].runs
    series = per_class_series(variants["ce"])
    counts = runs[0]["class_counts"]
    assert series.counts == sorted(counts, reverse=True) == [counts[c] for c in series.classes]
    for position, c in enumerate(series.classes):
        expected = (runs[0]["per_class_accuracy"][c] + runs[1]["per_class_accuracy"][c]) / 2
        assert series.accuracy[position] == pytest.approx(expected)
    single = per_class_series(Variant("ce", "ce", runs[:1]))
    assert single.accuracy == [runs[0]["per_class_accuracy"][c] for c in single.classes]


def test_per_class_figure_plots_the_series_inside_its_shot_bands(variants):
    record = variants["ce"].runs[0]
    bands = shot_bands(record["class_counts"], record["shot_groups"])
    assert [band.group for band in bands] == ["many", "medium", "few"]
    for band in bands:
        classes = record["shot_groups"][band.group]
        assert band.classes == len(classes)
        assert all(band.low < record["class_counts"][c] < band.high for c in classes)
    assert all(upper.low == lower.high for upper, lower in pairwise(bands))
    series = {label: per_class_series(v) for label, v in variants.items()}
    figure = figures.per_class_figure(series, bands)
    axes = figure.axes[0]
    # A row per variant, a column per class, head on the left; each tick the class's training count.
    np.testing.assert_allclose(
        axes.images[0].get_array(), [[100 * a for a in values.accuracy] for values in series.values()]
    )
    assert [tick.get_text() for tick in axes.get_yticklabels()] == list(series)
    counts = [int(tick.get_text()) for tick in axes.get_xticklabels()]
    assert counts == sorted(counts, reverse=True) and counts[0] == max(record["class_counts"])


def test_pooled_calibration_weights_bins_by_images_and_matches_a_single_runs_ece(variants):
    runs = variants["causal_tde"].runs
    single = pooled_calibration(Variant("causal_tde", "causal_tde", runs[:1]))
    assert single.count == runs[0]["calibration"]["count"]
    assert single.ece == pytest.approx(runs[0]["metrics"]["test"]["ece"])
    pooled = pooled_calibration(variants["causal_tde"])
    assert sum(pooled.count) == len(runs[0]["test_labels"]) + len(runs[1]["test_labels"])
    first, second = (run["calibration"] for run in runs)
    both = [i for i in range(15) if first["count"][i] and second["count"][i]]
    assert both, "the two seeds share no confidence bin"
    for i in both:
        correct = first["count"][i] * first["accuracy"][i] + second["count"][i] * second["accuracy"][i]
        assert pooled.accuracy[i] == pytest.approx(correct / (first["count"][i] + second["count"][i]))
    bins = zip(pooled.count, pooled.accuracy, pooled.confidence, strict=True)
    gaps = sum(n * abs(accuracy - confidence) for n, accuracy, confidence in bins if n)
    assert pooled.ece == pytest.approx(gaps / sum(pooled.count))
    assert pooled.ece == pytest.approx(
        expected_calibration_error(
            {"count": pooled.count, "accuracy": pooled.accuracy, "confidence": pooled.confidence}
        )
    )


def test_knob_curve_is_the_records_validation_entries(variants):
    runs = variants["causal_tde"].runs
    single = knob_curve(Variant("causal_tde", "causal_tde", runs[:1]))
    entries = runs[0]["knobs"]["validation"]
    assert single.knob == "alpha"
    assert (
        single.values
        == [entry["knobs"]["alpha"] for entry in entries]
        == runs[0]["knobs"]["candidates"]["alpha"]
    )
    for name in ("many", "medium", "few", "top1", "balanced_accuracy"):
        assert single.metrics[name] == [entry[name] for entry in entries]
    curve = knob_curve(variants["causal_tde"])
    assert curve.selected == [run["knobs"]["selected"]["alpha"] for run in runs]
    second = runs[1]["knobs"]["validation"]
    assert curve.metrics["medium"] == pytest.approx(
        [(a["medium"] + b["medium"]) / 2 for a, b in zip(entries, second, strict=True)]
    )
    assert knob_curve(variants["ce"]) is None  # nothing searched
    axes = figures.knob_figure({"causal_tde": curve}).axes[0]
    medium = next(line for line in axes.get_lines() if line.get_label() == "medium")
    np.testing.assert_allclose(medium.get_ydata(), [100 * v for v in curve.metrics["medium"]])
    chosen = {line.get_xdata()[0] for line in axes.get_lines() if line.get_linestyle() == ":"}
    assert chosen == set(curve.selected)


def test_paired_differences_equal_the_records_metric_differences(variants):
    tde, ce = variants["causal_tde"].runs, variants["ce"].runs
    record = tde[0]
    intervals = paired_bootstrap(
        [PairedRun.of(a, b) for a, b in zip(tde, ce, strict=True)],
        record["shot_groups"],
        len(record["class_counts"]),
    )
    for name, interval in intervals.items():
        differences = [
            a["metrics"]["test"][name] - b["metrics"]["test"][name] for a, b in zip(tde, ce, strict=True)
        ]
        expected = np.mean(differences)
        assert interval.estimate == pytest.approx(expected), name
        assert interval.low <= interval.estimate <= interval.high


def test_report_command_writes_the_page_and_the_figures_it_references(results, capsys):
    assert (
        main(["report", "--dataset", "digits_lt", "--baseline", "causal_tde", "--output", str(results)]) == 0
    )
    page = results / "report" / "digits_lt.md"
    text = page.read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images == [
        f"digits_lt/lt_small_cnn-1ep-ir10-{kind}.png"
        for kind in ("per-class", "calibration", "knobs", "curves", "cost")
    ]
    for image in images:
        assert (page.parent / image).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    records = list(iter_records(results))
    commit = (records[0]["git_commit"] or "unknown")[:10]  # None outside a git checkout
    assert f"from 4 finished run records (git commits: `{commit}" in text
    assert "### Paired differences against ce" in text and "### Paired differences against causal_tde" in text
    ce_row = re.search(r"^\| causal_tde \| 2 +\| (\S+)", text.split("against ce")[1], re.MULTILINE).group(1)
    tde_row = re.search(r"^\| ce +\| 2 +\| (\S+)", text.split("against causal_tde")[1], re.MULTILINE).group(1)
    assert float(ce_row.strip("*")) == -float(tde_row.strip("*"))  # the same difference, seen from both sides
    tde = [r for r in records if r["method"] == "causal_tde"]
    alphas = ", ".join(f"{r['knobs']['selected']['alpha']:g}" for r in sorted(tde, key=lambda r: r["seed"]))
    assert f"alpha = {alphas}" in text


def test_report_regenerates_identically_and_drops_stale_figures(results):
    folder = results / "report" / "digits_lt"
    assert main(["report", "--dataset", "digits_lt", "--output", str(results)]) == 0
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    page = (results / "report" / "digits_lt.md").read_bytes()
    (folder / "old-setting-per-class.png").write_bytes(b"stale")
    assert main(["report", "--dataset", "digits_lt", "--output", str(results)]) == 0
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before
    assert (results / "report" / "digits_lt.md").read_bytes() == page


def test_bad_report_requests_end_in_one_line_errors(results, capsys):
    assert main(["report", "--dataset", "mnist_lt", "--output", str(results)]) == 2
    assert "no finished run records of dataset 'mnist_lt'" in capsys.readouterr().err
    assert main(["report", "--dataset", "digits_lt", "--baseline", "focal", "--output", str(results)]) == 2
    error = capsys.readouterr().err
    assert "--baseline 'focal' has no finished runs on digits_lt; choose one of: causal_tde, ce" in error
    assert error.count("\n") == 1


def test_training_curve_and_cost_point_are_means_over_the_seeds(variants):
    runs = variants["ce"].runs
    curve = training_curve(variants["ce"])
    assert curve.epochs == [1] and curve.val_epochs == [1]
    assert curve.loss == [pytest.approx(np.mean([run["curve"][0]["loss"] for run in runs]))]
    assert curve.val_balanced_accuracy == [
        pytest.approx(np.mean([run["curve"][0]["val_balanced_accuracy"] for run in runs]))
    ]
    point = cost_point(variants["ce"])
    assert point.top1 == pytest.approx(np.mean([run["metrics"]["test"]["top1"] for run in runs]))
    flops = [run["cost"]["flops_per_image"] * run["cost"]["images_seen"] for run in runs]
    assert point.training_flops == pytest.approx(np.mean(flops))
    older = Variant("ce", "ce", [{**runs[0], "cost": None, "curve": []}, runs[1]])
    assert cost_point(older) is None
    assert training_curve(Variant("ce", "ce", [{**runs[0], "curve": []}])) is None


def test_the_report_has_the_test_agnostic_table(results):
    assert main(["report", "--dataset", "digits_lt", "--output", str(results)]) == 0
    text = (results / "report" / "digits_lt.md").read_text()
    table = text.split("### Test-agnostic accuracy")[1].split("###")[0]
    header = next(line for line in table.splitlines() if line.startswith("| Method"))
    titles = [cell.strip() for cell in header.strip("|").split("|")]
    row = next(line for line in table.splitlines() if line.startswith("| ce "))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    ce = sorted((r for r in iter_records(results) if r["method"] == "ce"), key=lambda r: r["seed"])
    backward = [100 * shift_accuracies(r)["backward10"] for r in ce]
    assert cells[titles.index("bwd 10")] == f"{np.mean(backward):.1f} ± {np.std(backward, ddof=1):.1f}"
    top1 = [100 * r["metrics"]["test"]["top1"] for r in ce]
    assert cells[titles.index("uniform")] == f"{np.mean(top1):.1f} ± {np.std(top1, ddof=1):.1f}"
