"""Write the whole site into one folder: pages, their data scripts and the shipped assets. The
output depends on the records alone (sorted keys, no timestamps, ids from names), so regenerating
it from the same records gives the same bytes."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import plotly

from lt_bench.atomic import write_atomically
from lt_bench.errors import UserError
from lt_bench.report.runs import DatasetRuns, Record, group_runs
from lt_bench.site import html
from lt_bench.site.pages import Page, dataset_page, index_page, run_page, slug

ASSETS = Path(__file__).parent / "assets"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
GENERATED = ("*.html", "*.js", "*.css")  # what a regeneration may remove when no longer produced


def site_files(records: Iterable[Record], site: Path, records_folder: Path) -> dict[str, bytes]:
    """Every file of the site by its path relative to `site`; links to the records are relative to
    where the site is written, so they work from the file system and a static host of the tree."""
    records = list(records)
    datasets: dict[str, DatasetRuns] = {
        name: group_runs(records, name) for name in sorted({record["dataset"] for record in records})
    }
    link = Path(os.path.relpath(records_folder, site)).as_posix()
    pages: dict[str, Page] = {"index.html": index_page(datasets)}
    scripts: dict[str, Page] = {}
    for name, runs in datasets.items():
        pages[f"{slug(name)}.html"] = scripts[f"data/{slug(name)}.js"] = dataset_page(runs, f"{link}/")
        for record in runs.records:
            run_id = slug(record["run_id"])
            page = run_page(record, f"../{link}/{record['run_id']}.json")  # records are named by run id
            pages[f"runs/{run_id}.html"] = scripts[f"data/runs/{run_id}.js"] = page
    files = {path: page.html.encode() for path, page in pages.items()}
    files.update({path: html.data_script(page.figures).encode() for path, page in scripts.items()})
    files.update({f"assets/{asset.name}": asset.read_bytes() for asset in sorted(ASSETS.iterdir())})
    files["assets/plotly.min.js"] = PLOTLY_JS.read_bytes()
    return files


def _check_folder(site: Path) -> None:
    """Refuse a non-empty folder that is not an earlier site: its files would be cleaned up."""
    if not site.is_dir() or not any(site.iterdir()):
        return
    index = site / "index.html"
    if not (index.is_file() and f'content="{html.GENERATOR}"' in index.read_text(errors="replace")):
        raise UserError(f"{site} holds files that are not an lt-bench site; pass --to a new or empty folder")


def write_site(records: Iterable[Record], site: str | Path, records_folder: str | Path) -> Path:
    """Write the site into `site` (removing files of an earlier site no longer produced); return
    its index page."""
    site, records_folder = Path(site), Path(records_folder)
    _check_folder(site)
    files = site_files(records, site.resolve(), records_folder.resolve())
    for relative, content in sorted(files.items()):
        write_atomically(site / relative, lambda handle, content=content: handle.write(content))
    for pattern in GENERATED:
        for stale in site.rglob(pattern):
            if stale.relative_to(site).as_posix() not in files:
                stale.unlink()
    return site / "index.html"
