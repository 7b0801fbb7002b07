"""Mask R-CNN on a timm + FPN backbone with the method's box classifier, on real mnist_lt_seg canvases."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from lt_bench.detection.data import DETECTION_DATASETS, instance_targets
from lt_bench.detection.engine import DetectorConfig, box_regression_loss, build_detector
from lt_bench.method import METHODS, MethodContext

torch.set_num_threads(1)

# The offline set's own detector: ResNet-10-T, 32 FPN channels, D = 64.
RECIPE_DETECTOR = replace(DetectorConfig(), **DETECTION_DATASETS.get("mnist_lt_seg").recipe.detector)


def tiny_context() -> MethodContext:
    return MethodContext(
        dataset="mnist_lt_seg",
        num_classes=10,
        class_counts=(200, 120, 72, 43, 26, 15, 9, 6, 3, 2),
        feature_dim=RECIPE_DETECTOR.representation_size,
        epochs=1,
        steps_per_epoch=1,
        base_lr=0.02,
    )


def test_box_regression_loss_by_hand() -> None:
    # RoI 0 is background (no loss); RoI 1 of category 2: deltas (0.1, 0, 0, 0.5) against zeros.
    # Smooth-L1 with β = 1/9: 0.5·0.1²·9 = 0.045 and 0.5 − 0.5/9 = 0.44444; summed, over 2 RoIs.
    deltas = torch.zeros(2, 3 * 4)
    deltas[1, 8:12] = torch.tensor([0.1, 0.0, 0.0, 0.5])
    loss = box_regression_loss(deltas, torch.tensor([0, 2]), torch.zeros(2, 4))
    assert loss.item() == pytest.approx((0.045 + 0.5 - 0.5 / 9) / 2)


def test_trains_and_detects_on_real_canvases() -> None:
    torch.manual_seed(0)
    data = DETECTION_DATASETS.get("mnist_lt_seg")().read(None, 0)
    model = build_detector(METHODS.get("ce")(tiny_context()), RECIPE_DETECTOR, 10, 1, [0.1], [0.3])
    images = [data.train.image(i).float() / 255 for i in range(2)]
    targets = [instance_targets(data.train, i, data.category_ids) for i in range(2)]
    losses = model(images, targets)
    assert set(losses) == {
        "loss_classifier",
        "loss_box_reg",
        "loss_mask",
        "loss_objectness",
        "loss_rpn_box_reg",
    }
    sum(losses.values()).backward()
    assert model.roi_heads.box_predictor.classifier.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        detections = model([data.test.image(0).float() / 255])[0]
    assert 0 < len(detections["boxes"]) <= RECIPE_DETECTOR.detections_per_image
    assert detections["boxes"].min() >= 0 and detections["boxes"].max() <= 64
    assert set(detections["labels"].tolist()) <= set(range(1, 11))
    assert detections["masks"].shape == (len(detections["boxes"]), 1, 64, 64)
