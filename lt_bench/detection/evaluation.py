"""LVIS federated evaluation (AP, AP50, AP75, APs/m/l, APr/c/f) through faster-coco-eval's LVIS mode.

Gupta, Dollár & Girshick, "LVIS" (CVPR 2019): a detection of a category counts in an image only where
the category is annotated there or listed in the image's `neg_category_ids`; unmatched detections of a
category in `not_exhaustive_category_ids` are ignored; at most 300 detections per image (the official
`lvis` API, github.com/lvis-dataset/lvis-api `lvis/results.py`, keeps the top 300 by score); APr / APc /
APf average the categories tagged rare / common / frequent. faster-coco-eval (pinned in `detection`)
implements the same rules; the official `lvis` package is not used because 0.5.3 calls `np.float`,
removed in NumPy 1.24, and pulls in OpenCV.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Literal

MAX_DETECTIONS_PER_IMAGE = 300  # LVIS v0.5 / v1 evaluation rule
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
_STAT_LABELS = {  # faster-coco-eval's stats_as_dict names
    "AP": "AP_all",
    "AP50": "AP_50",
    "AP75": "AP_75",
    "APs": "AP_small",
    "APm": "AP_medium",
    "APl": "AP_large",
    "APr": "APr",
    "APc": "APc",
    "APf": "APf",
}


def top_detections(
    detections: Sequence[dict[str, Any]], per_image: int = MAX_DETECTIONS_PER_IMAGE
) -> list[dict[str, Any]]:
    """The `per_image` highest-scoring detections of each image (ties keep their input order)."""
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for detection in detections:
        by_image[detection["image_id"]].append(detection)
    kept: list[dict[str, Any]] = []
    for image_detections in by_image.values():
        kept += sorted(image_detections, key=lambda d: -d["score"])[:per_image]
    return kept


def evaluate_lvis(
    ground_truth: dict[str, Any],
    detections: Sequence[dict[str, Any]],
    iou_type: Literal["segm", "bbox"] = "segm",
    max_detections: int = MAX_DETECTIONS_PER_IMAGE,
) -> dict[str, float | None]:
    """LVIS metrics of `detections` (COCO result dicts) on an LVIS-format `ground_truth` dict.

    A metric with no category to average (e.g. no rare category in the split) is None, not −1.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    kept = [copy.deepcopy(d) for d in top_detections(detections, max_detections)]
    gt = COCO(copy.deepcopy(ground_truth), print_function=_silent)
    if not kept:
        return dict.fromkeys(METRICS, 0.0)
    results = gt.loadRes(kept)
    evaluator = COCOeval_faster(gt, results, iouType=iou_type, lvis_style=True, print_function=_silent)
    evaluator.params.maxDets = [max_detections]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    stats = evaluator.stats_as_dict
    return {name: _metric(stats[_STAT_LABELS[name]]) for name in METRICS}


def _metric(value: float) -> float | None:
    value = float(value)
    return None if value < 0 or math.isnan(value) else value


def _silent(*_: object) -> None:
    """faster-coco-eval prints its summary through this; the harness writes records instead."""
