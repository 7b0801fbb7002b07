"""LVIS v1 and v0.5 from `--data-root`: the LVIS annotation JSON files and the COCO 2017 images."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lt_bench.data.files import decode_rgb
from lt_bench.detection.data import (
    DETECTION_DATASETS,
    DetectionData,
    DetectionRecipe,
    DetectionSource,
    DetectionSplit,
)
from lt_bench.errors import UserError

COCO_IMAGES = "http://images.cocodataset.org/zips/{folder}.zip"
LVIS_FILES = "https://dl.fbaipublicfiles.com/LVIS/{name}.zip"
VAL_FRACTION = 0.01  # training images held out (seeded) to choose test-time knobs; LVIS val is the test set


@dataclass(frozen=True)
class FileDetectionSplit(DetectionSplit):
    """A split whose images are files: `image_paths[i]` belongs to `ground_truth["images"][i]`."""

    ground_truth: dict[str, Any]
    image_paths: tuple[Path, ...]

    def image(self, index: int) -> torch.Tensor:
        entry = self.ground_truth["images"][index]
        rgb = decode_rgb(str(self.image_paths[index]), f"image {entry['id']} of the LVIS annotations")
        return torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1)


def image_path(root: Path, entry: dict[str, Any]) -> Path:
    """Where an LVIS image entry lives under `root`: `<train2017|val2017>/<file>` from its `coco_url`."""
    folder, name = entry["coco_url"].rsplit("/", 2)[-2:]
    return root / folder / name


def validated(ground_truth: dict[str, Any], source: Path) -> dict[str, Any]:
    """`ground_truth` after checking that every annotation names a known image and category and every
    category carries a frequency tag; the first fault is a one-line UserError."""
    category_ids = {c["id"] for c in ground_truth["categories"]}
    image_ids = {i["id"] for i in ground_truth["images"]}
    for category in ground_truth["categories"]:
        if category.get("frequency") not in ("r", "c", "f"):
            raise UserError(
                f"{source}: category {category['id']} has frequency {category.get('frequency')!r}, "
                f"not r/c/f; re-download the LVIS annotation file"
            )
    for annotation in ground_truth["annotations"]:
        if annotation["category_id"] not in category_ids:
            raise UserError(
                f"{source}: annotation {annotation['id']} has unknown category id "
                f"{annotation['category_id']}; re-download the LVIS annotation file"
            )
        if annotation["image_id"] not in image_ids:
            raise UserError(
                f"{source}: annotation {annotation['id']} names unknown image id {annotation['image_id']}; "
                f"re-download the LVIS annotation file"
            )
    return ground_truth


def _subset(ground_truth: dict[str, Any], images: list[dict[str, Any]]) -> dict[str, Any]:
    ids = {i["id"] for i in images}
    annotations = [a for a in ground_truth["annotations"] if a["image_id"] in ids]
    return {**ground_truth, "images": images, "annotations": annotations}


class LvisSource(DetectionSource):
    """LVIS (Gupta, Dollár & Girshick, CVPR 2019): train minus a seeded 1 % for validation, val as test."""

    takes_data_root = True
    version: str
    # Mask R-CNN R50-FPN 1x of mmdetection's / Detectron2's LVIS configs: 12 epochs, batch 16, lr 0.02
    # decayed at epochs 8 and 11, 1000 warm-up iterations (the RFS configs add t = 0.001).
    recipe = DetectionRecipe(epochs=12, batch_size=16, lr=0.02, milestones=(8, 11), warmup_steps=1000)

    def files(self, root: Path) -> tuple[Path, Path]:
        return root / f"lvis_{self.version}_train.json", root / f"lvis_{self.version}_val.json"

    def _missing_line(self, root: Path, missing: list[Path]) -> str:
        names = [f"lvis_{self.version}_train.json", f"lvis_{self.version}_val.json"]
        return (
            f"{self.name} needs {', '.join(str(p) for p in missing)}: put {' and '.join(names)} (from "
            f"{' and '.join(LVIS_FILES.format(name=n) for n in names)}, unzipped) and the COCO 2017 "
            f"images train2017/ and val2017/ (from {COCO_IMAGES.format(folder='train2017')} and "
            f"{COCO_IMAGES.format(folder='val2017')}) in {root}"
        )

    def read(self, data_root: Path | None, data_seed: int) -> DetectionData:
        if data_root is None:
            raise UserError(
                f"{self.name} needs --data-root: the folder holding the LVIS files and COCO images"
            )
        train_file, val_file = self.files(data_root)
        missing = [p for p in (train_file, val_file) if not p.is_file()]
        if missing:
            raise UserError(self._missing_line(data_root, missing))
        train_all = validated(_read_json(train_file), train_file)
        test = validated(_read_json(val_file), val_file)
        order = np.random.default_rng(data_seed).permutation(len(train_all["images"]))
        held_out = max(1, round(VAL_FRACTION * len(order)))
        val_images = [train_all["images"][i] for i in sorted(order[:held_out])]
        train_images = [train_all["images"][i] for i in sorted(order[held_out:])]
        splits = [
            self._split(data_root, _subset(train_all, images), train_file)
            for images in (train_images, val_images)
        ]
        return DetectionData(self.name, *splits, self._split(data_root, test, val_file), in_chans=3)

    def _split(self, root: Path, ground_truth: dict[str, Any], source: Path) -> FileDetectionSplit:
        paths = tuple(image_path(root, entry) for entry in ground_truth["images"])
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise UserError(
                f"{len(missing)} images listed in {source} are missing, first {missing[0]}; unzip the "
                f"COCO 2017 images ({COCO_IMAGES.format(folder=missing[0].parent.name)}) into {root}"
            )
        return FileDetectionSplit(ground_truth, paths)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open() as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"{path} cannot be read as JSON ({error}); re-download and unzip it") from None


@DETECTION_DATASETS.register("lvis_v1")
class LvisV1(LvisSource):
    name = "lvis_v1"
    version = "v1"
    description = "LVIS v1.0 (1,203 categories; 100k train / 19.8k val images of COCO 2017) from --data-root"


@DETECTION_DATASETS.register("lvis_v0.5")
class LvisV05(LvisSource):
    name = "lvis_v0.5"
    version = "v0.5"
    description = "LVIS v0.5 (1,230 categories; 57k train / 5k val images of COCO 2017) from --data-root"
