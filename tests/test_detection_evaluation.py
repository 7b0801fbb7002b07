"""LVIS evaluation through faster-coco-eval against the official `lvis` API's numbers on one fixture."""

from __future__ import annotations

import random

import pytest

from lt_bench.detection.evaluation import METRICS, evaluate_lvis, top_detections

# The official API (github.com/lvis-dataset/lvis-api, `lvis` 0.5.3 from PyPI: LVIS, LVISResults with
# max_dets, LVISEval with params.max_dets, .run(), .results) on `lvis_fixture()` below. lvis 0.5.3 ran
# with `np.float = float` (it predates NumPy 1.24) and an empty `cv2` module (only its plotting needs it).
# APl is −1 there (no large object): None here.
OFFICIAL = {
    ("segm", 300): (0.244516844541597, 0.6449257425742575, 0.14405940594059405, 0.17733134027688482,
                    0.5999999999999999, None, 0.13531353135313529, 0.2301155115511551, 0.30631916763104877),
    ("segm", 3): (0.10074257425742573, 0.3036303630363036, 0.01608910891089109, 0.09150165016501649,
                  0.19999999999999998, None, 0.10396039603960393, 0.21749174917491745, 0.04075907590759076),
    ("bbox", 300): (0.3069668574000257, 0.604496699669967, 0.19603960396039605, 0.21698893103596073,
                    0.7499999999999999, None, 0.19735973597359735, 0.31848184818481845, 0.3560129227208435),
    ("bbox", 3): (0.13708745874587458, 0.3036303630363036, 0.06806930693069306, 0.12566006600660065,
                  0.24999999999999997, None, 0.12475247524752472, 0.31848184818481845, 0.05255775577557755),
}  # fmt: skip


def _rectangle(x: int, y: int, w: int, h: int) -> list[list[int]]:
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _cut_corner(x: int, y: int, w: int, h: int) -> list[list[int]]:
    return [[x + w // 2, y, x + w, y, x + w, y + h, x, y + h, x, y + h // 2]]


def lvis_fixture() -> tuple[dict, list[dict]]:
    """4 images, categories tagged r, c, f, f; negative and not-exhaustive lists; jittered detections."""
    rng = random.Random(7)
    categories = [{"id": i + 1, "name": f"c{i + 1}", "frequency": f} for i, f in enumerate("rcff")]
    images, annotations, detections = [], [], []
    for image_id in range(1, 5):
        present = sorted(rng.sample([1, 2, 3, 4], 2))
        absent = [c for c in [1, 2, 3, 4] if c not in present]
        images.append(
            {"id": image_id, "width": 96, "height": 96, "neg_category_ids": absent[:1],
             "not_exhaustive_category_ids": present[1:]}
        )  # fmt: skip
        for category in present:
            for _ in range(rng.randint(1, 3)):
                x, y, w, h = rng.randint(0, 40), rng.randint(0, 40), rng.randint(4, 40), rng.randint(4, 40)
                annotations.append(
                    {"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                     "bbox": [x, y, w, h], "area": w * h, "segmentation": _rectangle(x, y, w, h),
                     "iscrowd": 0}
                )  # fmt: skip
                for _ in range(2):
                    dx, dy, dw, dh = (rng.randint(-3, 3) for _ in range(4))
                    ww, hh = max(w + dw, 2), max(h + dh, 2)
                    label = category if rng.random() < 0.8 else rng.choice([1, 2, 3, 4])
                    detections.append(
                        {"image_id": image_id, "category_id": label, "bbox": [x + dx, y + dy, ww, hh],
                         "segmentation": _cut_corner(x + dx, y + dy, ww, hh), "score": round(rng.random(), 4)}
                    )  # fmt: skip
        for _ in range(3):
            x, y = rng.randint(0, 50), rng.randint(0, 50)
            detections.append(
                {"image_id": image_id, "category_id": rng.choice([1, 2, 3, 4]), "bbox": [x, y, 10, 10],
                 "segmentation": _rectangle(x, y, 10, 10), "score": round(rng.random(), 4)}
            )  # fmt: skip
    return {"images": images, "annotations": annotations, "categories": categories}, detections


@pytest.mark.parametrize(("iou_type", "max_detections"), sorted(OFFICIAL))
def test_metrics_equal_the_official_lvis_api(iou_type: str, max_detections: int) -> None:
    ground_truth, detections = lvis_fixture()
    metrics = evaluate_lvis(ground_truth, detections, iou_type, max_detections)
    for name, expected in zip(METRICS, OFFICIAL[iou_type, max_detections], strict=True):
        if expected is None:
            assert metrics[name] is None, name
        else:
            assert metrics[name] == pytest.approx(expected, abs=1e-6), name


def test_perfect_detections_score_one_and_unlisted_categories_are_ignored() -> None:
    ground_truth, _ = lvis_fixture()
    detections = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
         "segmentation": a["segmentation"], "score": 0.9}
        for a in ground_truth["annotations"]
    ]  # fmt: skip
    image = ground_truth["images"][0]
    listed = {a["category_id"] for a in ground_truth["annotations"] if a["image_id"] == image["id"]}
    unlisted = next(c for c in (1, 2, 3, 4) if c not in listed | set(image["neg_category_ids"]))
    detections.append({"image_id": image["id"], "category_id": unlisted, "bbox": [0, 0, 9, 9],
                       "segmentation": _rectangle(0, 0, 9, 9), "score": 1.0})  # fmt: skip
    metrics = evaluate_lvis(ground_truth, detections, "segm")
    assert metrics["AP"] == pytest.approx(1.0) and metrics["APr"] == pytest.approx(1.0)


def test_top_detections_keeps_the_highest_scores_of_each_image() -> None:
    detections = [{"image_id": i % 2, "score": s} for i, s in enumerate([0.1, 0.9, 0.5, 0.3, 0.7])]
    kept = top_detections(detections, per_image=2)
    assert sorted((d["image_id"], d["score"]) for d in kept) == [(0, 0.5), (0, 0.7), (1, 0.3), (1, 0.9)]
