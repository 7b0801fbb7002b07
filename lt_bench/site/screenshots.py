"""`python -m lt_bench.site.screenshots SITE FOLDER [--dataset D]`: PNG screenshots of the site's
main pages (the index, a dataset's leaderboard sorted by few-shot accuracy and its charts, one of
its CE runs) for the README."""

from __future__ import annotations

import argparse
from pathlib import Path

from lt_bench.site.browser import browser_page

CHART_WAIT_MS = 1500  # Plotly draws after the page's load event


def take_screenshots(site: Path, folder: Path, dataset_name: str | None = None) -> list[Path]:
    """Write index.png, leaderboard.png, charts.png and run.png into `folder`; return them. The
    dataset is `dataset_name`, else the first by name."""
    folder.mkdir(parents=True, exist_ok=True)
    pages = sorted(path for path in site.glob("*.html") if path.name != "index.html")
    dataset = site / f"{dataset_name}.html" if dataset_name else pages[0]
    run = sorted((site / "runs").glob(f"{dataset.stem}-ce-*.html"))[0]
    written = []
    with browser_page(width=1600, height=900) as session:
        for name, page, selector in (
            ("index", site / "index.html", None),
            ("leaderboard", dataset, "div.board-wrap"),
            ("charts", dataset, "section"),
            ("run", run, None),
        ):
            session.page.goto(page.resolve().as_uri())
            session.page.wait_for_timeout(CHART_WAIT_MS)
            if name == "leaderboard":
                session.page.click("table.board th:text-is('Few')")
            path = folder / f"{name}.png"
            if selector is None:
                session.page.screenshot(path=path, full_page=name == "index")
            else:
                session.page.locator(selector).first.screenshot(path=path)
            written.append(path)
        if session.errors or session.outside_requests:
            raise RuntimeError(f"the site misbehaved: {session.errors} {session.outside_requests}")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("site", type=Path, help="the site folder (lt-bench site --to)")
    parser.add_argument("folder", type=Path, help="where the PNGs go")
    parser.add_argument("--dataset", help="the dataset whose pages are shown (default: the first by name)")
    args = parser.parse_args()
    for path in take_screenshots(args.site, args.folder, args.dataset):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
