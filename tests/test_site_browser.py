"""The generated site in a real browser (the system's headless Chromium through Playwright), opened
from the file system: sorting, filtering, a run page, no console error, no request leaving it.
Skipped where chromium or playwright is missing; with CI=true that is a failure instead."""

import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from lt_bench.cli import main
from lt_bench.records import iter_records
from lt_bench.site.browser import browser_page, chromium_path

RESULTS = Path(__file__).resolve().parents[1] / "results"
PAPER_METHODS = ("ce", "causal_tde")  # their mnist_lt records copied as --protocol paper runs
CHART = ".chart .main-svg"  # what Plotly draws into a chart's division


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    missing = [
        what
        for what, present in (
            ("chromium (apt-get install chromium)", chromium_path() is not None),
            ("playwright (the dev extra)", importlib.util.find_spec("playwright") is not None),
        )
        if not present
    ]
    if missing:
        message = f"no {' and no '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    output = tmp_path_factory.mktemp("results")
    shutil.copytree(RESULTS / "records", output / "records")
    for record in iter_records(RESULTS):
        if record["dataset"] == "mnist_lt" and record["method"] in PAPER_METHODS:
            paper = {**record, "run_id": record["run_id"] + "-paper"}
            paper["config"] = {**record["config"], "protocol": "paper"}
            (output / "records" / f"{paper['run_id']}.json").write_text(json.dumps(paper))
    assert main(["site", "--output", str(output), "--to", str(output / "site")]) == 0
    return output / "site"


@pytest.fixture
def session():
    with browser_page() as opened:
        yield opened
        assert opened.errors == [], "console errors"
        assert opened.outside_requests == [], "requests that left the file system"


def column_values(page, title: str) -> list[str]:
    """The data-value of the visible rows' cells under the header `title`."""
    return page.evaluate(
        """(title) => {
            const headers = Array.from(document.querySelectorAll("table.board th"));
            const index = headers.findIndex((th) => th.textContent.trim() === title);
            return Array.from(document.querySelectorAll("table.board tr.entry"))
                .filter((row) => !row.hidden)
                .map((row) => row.children[index].dataset.value);
        }""",
        title,
    )


def test_sorting_by_the_few_shot_column_orders_the_rows_by_few_shot_accuracy(site, session):
    page = session.page
    page.goto((site / "mnist_lt.html").as_uri())
    page.wait_for_selector(CHART)
    page.click("table.board th:text-is('Few')")
    few = [float(value) for value in column_values(page, "Few")]
    assert few == sorted(few, reverse=True) and few[0] > few[-1]
    records = [r for r in iter_records(site.parent) if r["dataset"] == "mnist_lt" and r["method"] == "lift"]
    best = sum(100 * r["metrics"]["test"]["few"] for r in records) / len(records)
    assert few[0] == pytest.approx(best, abs=1e-4)  # lift has the best few-shot accuracy on mnist_lt
    assert page.get_attribute("table.board th:text-is('Few')", "aria-sort") == "descending"
    page.click("table.board th:text-is('Few')")
    assert [float(value) for value in column_values(page, "Few")] == sorted(few)


def test_a_protocol_filter_keeps_that_protocols_rows_and_the_index_links_to_it(site, session):
    page = session.page
    page.goto((site / "mnist_lt.html").as_uri())
    assert len(column_values(page, "Method")) == 21 + len(PAPER_METHODS)
    page.select_option("select[data-filter=protocol]", "paper")
    assert sorted(column_values(page, "Method")) == sorted(PAPER_METHODS)
    assert set(column_values(page, "Protocol")) == {"paper"}
    assert page.text_content(".filters .shown") == f"{len(PAPER_METHODS)} of 23 rows"
    page.goto((site / "index.html").as_uri())
    with page.expect_navigation():
        page.click("a[href='mnist_lt.html#protocol=paper']")
    assert page.input_value("select[data-filter=protocol]") == "paper"
    assert sorted(column_values(page, "Method")) == sorted(PAPER_METHODS)


def test_a_row_expands_to_its_interval_and_runs_and_opens_a_run_page(site, session):
    page = session.page
    page.goto((site / "mnist_lt.html").as_uri())
    row = page.locator("table.board tr.entry", has_text="causal_tde").filter(has_text="shared")
    row.click()
    details = row.locator("xpath=following-sibling::tr[1]")
    assert details.is_visible() and "Paired differences against ce (3 seed pairs)" in details.text_content()
    details.locator("a", has_text="seed 1").click()
    page.wait_for_selector(CHART)
    assert page.text_content("h1").startswith("mnist_lt-causal_tde-lt_small_cnn-seed1-")
    assert "lt-bench run --method causal_tde --dataset mnist_lt --seed 1" in page.text_content("pre")
    assert page.locator("table.plain", has_text="training images").locator("tbody tr").count() == 10
    with page.expect_event("load"):
        page.click("text=record JSON")
    assert json.loads(page.text_content("body"))["method"] == "causal_tde"


def test_every_chart_of_a_dataset_page_draws(site, session):
    page = session.page
    page.goto((site / "fashion_mnist_lt.html").as_uri())
    page.wait_for_selector(CHART)
    charts = page.locator(".chart")
    assert charts.count() == 5
    assert charts.filter(has=page.locator(".main-svg")).count() == 5
