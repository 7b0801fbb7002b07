"""The offline instance segmentation set: real digits, LVIS-format ground truth, LVIS frequency tags."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lt_bench.detection.data import DETECTION_DATASETS, FrequencyRule, images_per_category, instance_targets
from lt_bench.detection.sources.mnist_seg import train_images_per_digit

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mnist_lt_seg():
    return DETECTION_DATASETS.get("mnist_lt_seg")().read(None, 0)


def test_lvis_frequency_rule_tags_by_training_images() -> None:
    rule = FrequencyRule()
    assert [rule.tag(n) for n in (1, 10, 11, 100, 101)] == ["r", "r", "c", "c", "f"]


def test_training_images_per_digit_follow_the_profile(mnist_lt_seg) -> None:
    assert train_images_per_digit() == [200, 120, 72, 43, 26, 15, 9, 6, 3, 2]
    counts = images_per_category(mnist_lt_seg.train.ground_truth)
    assert list(counts.values()) == [200, 120, 72, 43, 26, 15, 9, 6, 3, 2]  # no digit fully hidden at seed 0
    assert "".join(c["frequency"] for c in mnist_lt_seg.categories) == "ffccccrrrr"
    assert set(images_per_category(mnist_lt_seg.test.ground_truth).values()) == {25}
    assert set(images_per_category(mnist_lt_seg.val.ground_truth).values()) == {10}


def test_ground_truth_is_exhaustive_and_masks_lie_in_their_boxes(mnist_lt_seg) -> None:
    split = mnist_lt_seg.test
    for index, entry in enumerate(split.ground_truth["images"]):
        present = {a["category_id"] for a in split.annotations_by_image[entry["id"]]}
        assert sorted(present | set(entry["neg_category_ids"])) == list(range(1, 11))
        assert not present & set(entry["neg_category_ids"])
        targets = instance_targets(split, index, mnist_lt_seg.category_ids)
        image = split.image(index)[0]
        for (x1, y1, x2, y2), mask in zip(targets["boxes"].int().tolist(), targets["masks"], strict=True):
            rows, cols = torch.nonzero(mask, as_tuple=True)
            assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (y1, y2, x1, x2)
            assert image[mask.bool()].min() >= 64  # the mask covers real digit strokes


def test_same_seed_same_canvases_other_seed_other_canvases(mnist_lt_seg) -> None:
    again = DETECTION_DATASETS.get("mnist_lt_seg")().read(None, 0)
    assert torch.equal(again.train.images, mnist_lt_seg.train.images)
    assert again.test.ground_truth == mnist_lt_seg.test.ground_truth
    other = DETECTION_DATASETS.get("mnist_lt_seg")().read(None, 1)
    assert not np.array_equal(other.train.images.numpy(), mnist_lt_seg.train.images.numpy())
