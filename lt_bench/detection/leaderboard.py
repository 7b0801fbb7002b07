"""The leaderboard's instance segmentation section: mask AP by LVIS frequency group, from the records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from lt_bench.leaderboard import mean_std

COLUMNS = {
    "AP": "AP",
    "AP50": "AP50",
    "AP75": "AP75",
    "APr": "APr",
    "APc": "APc",
    "APf": "APf",
    "box_AP": "Box AP",
}
INTRODUCTION = [
    "Mask AP (%) on the test split under LVIS's federated evaluation (faster-coco-eval's LVIS mode, at",
    "most 300 detections per image), mean ± std over seeds. APr / APc / APf average the categories in",
    "1–10 / 11–100 / > 100 training images; Box AP is the box detections' AP.",
]


def detection_section(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Markdown lines: one table per dataset, a row per (method, backbone, D, epochs), best AP first;
    the most recently finished record of each configuration and seed counts."""
    latest: dict[tuple, Mapping[str, Any]] = {}
    for record in sorted(records, key=lambda r: r.get("finished_at", "")):
        latest[record["run_id"]] = record
    tables: dict[str, dict[tuple, list[Mapping[str, Any]]]] = {}
    for record in latest.values():
        config = record["config"]
        key = (
            record["method"],
            record["backbone"],
            config["detector"]["representation_size"],
            config["epochs"],
        )
        tables.setdefault(record["dataset"], {}).setdefault(key, []).append(record)
    if not tables:
        return []
    lines = ["", "# Long-tailed instance segmentation", "", *INTRODUCTION]
    for dataset in sorted(tables):
        rows = []
        for (method, backbone, dimension, epochs), group in tables[dataset].items():
            tests = pd.DataFrame([r["metrics"]["test"] for r in group])
            row = {"Method": method, "Backbone": backbone, "D": dimension, "Epochs": epochs}
            row |= {title: mean_std(tests[key]) for key, title in COLUMNS.items()}
            row |= {"Seeds": len(group), "_order": tests["AP"].astype(float).mean()}
            rows.append(row)
        frame = pd.DataFrame(rows).sort_values(["_order", "Method"], ascending=[False, True], kind="stable")
        table = frame.drop(columns="_order").to_markdown(index=False, disable_numparse=True)
        lines += ["", f"## {dataset}", "", table]
    return lines
