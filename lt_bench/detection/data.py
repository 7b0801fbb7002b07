"""What every instance segmentation dataset provides: LVIS-format splits and frequency-tagged categories."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from lt_bench.registry import Registry

FREQUENCY_GROUPS = {"r": "rare", "c": "common", "f": "frequent"}


@dataclass(frozen=True)
class FrequencyRule:
    """LVIS's tags from training *images* per category (Gupta et al. 2019, Sec. 4.1):
    rare 1–10, common 11–100, frequent > 100."""

    rare_at_most: int = 10
    common_at_most: int = 100

    def tag(self, image_count: int) -> str:
        if image_count <= self.rare_at_most:
            return "r"
        return "c" if image_count <= self.common_at_most else "f"


LVIS_FREQUENCY_RULE = FrequencyRule()


def images_per_category(ground_truth: dict[str, Any]) -> dict[int, int]:
    """How many images hold at least one instance of each category id (0 for a category with none)."""
    pairs = {(a["image_id"], a["category_id"]) for a in ground_truth["annotations"]}
    counts = Counter(category for _, category in pairs)
    return {c["id"]: counts.get(c["id"], 0) for c in ground_truth["categories"]}


class DetectionSplit(ABC):
    """One split: an LVIS-format ground truth dict and the image of each of its `images` entries."""

    ground_truth: dict[
        str, Any
    ]  # images (id, width, height, neg/not-exhaustive ids), annotations, categories

    def __len__(self) -> int:
        return len(self.ground_truth["images"])

    @abstractmethod
    def image(self, index: int) -> torch.Tensor:
        """The uint8 image (C, H, W) of `ground_truth["images"][index]`."""

    @cached_property
    def annotations_by_image(self) -> dict[int, list[dict[str, Any]]]:
        """The annotations of each image id."""
        index: dict[int, list[dict[str, Any]]] = {}
        for annotation in self.ground_truth["annotations"]:
            index.setdefault(annotation["image_id"], []).append(annotation)
        return index


@dataclass(frozen=True)
class TensorDetectionSplit(DetectionSplit):
    """A split whose images are held in memory, in the order of `ground_truth["images"]`."""

    images: torch.Tensor  # uint8 (N, C, H, W)
    ground_truth: dict[str, Any]

    def image(self, index: int) -> torch.Tensor:
        return self.images[index]


@dataclass(frozen=True)
class DetectionData:
    """A loaded long-tailed instance segmentation dataset."""

    name: str
    train: DetectionSplit
    val: DetectionSplit
    test: DetectionSplit
    in_chans: int

    @property
    def categories(self) -> list[dict[str, Any]]:
        """The categories (id, name, frequency tag), as the training ground truth lists them."""
        return self.train.ground_truth["categories"]

    @property
    def category_ids(self) -> list[int]:
        """Category ids in label order: model label k (1-based; 0 is background) is `category_ids[k - 1]`."""
        return [c["id"] for c in self.categories]


def instance_targets(
    split: DetectionSplit, index: int, category_ids: Sequence[int]
) -> dict[str, torch.Tensor]:
    """torchvision detection targets of one image: boxes (x1, y1, x2, y2), labels (1-based), masks."""
    from faster_coco_eval.core import mask as mask_api

    entry = split.ground_truth["images"][index]
    label_of = {category: k + 1 for k, category in enumerate(category_ids)}
    annotations = split.annotations_by_image.get(entry["id"], [])
    boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annotations)]
    masks = [
        mask_api.decode(mask_api.segmToRle(a["segmentation"], entry["width"], entry["height"]))
        for a in annotations
    ]
    height, width = entry["height"], entry["width"]
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor([label_of[a["category_id"]] for a in annotations], dtype=torch.int64),
        "masks": torch.from_numpy(np.stack(masks))
        if masks
        else torch.zeros(0, height, width, dtype=torch.uint8),
    }


@dataclass(frozen=True)
class DetectionRecipe:
    """A dataset's default detection recipe: SGD schedule and `DetectorConfig` overrides."""

    epochs: int
    batch_size: int
    lr: float
    milestones: tuple[int, ...]  # 0-based epochs from which the rate is multiplied by 0.1
    warmup_steps: int
    weight_decay: float = 1e-4
    detector: dict[str, Any] = field(default_factory=dict)


class DetectionSource(ABC):
    """A named instance segmentation dataset: where it comes from and how to read it."""

    name: ClassVar[str]
    description: ClassVar[str]
    takes_data_root: ClassVar[bool]
    recipe: ClassVar[DetectionRecipe]

    @abstractmethod
    def read(self, data_root: Path | None, data_seed: int) -> DetectionData:
        """Load the splits; a UserError naming what to fetch where data is missing."""


DETECTION_DATASETS: Registry[type[DetectionSource]] = Registry(
    "instance segmentation dataset", builtin_package="lt_bench.detection.sources"
)
