"""Write a loaded dataset as an LVIS-format tree (annotation JSON + COCO-2017-style image folders)."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from lt_bench.detection.data import DetectionData


def write_lvis_tree(
    data: DetectionData, root: Path, version: str = "v1", images_per_split: int | None = None
) -> None:
    """`data`'s train split as `lvis_<version>_train.json` + train2017/, its test split as `..._val.json` +
    val2017/ (PNG files, `coco_url` as LVIS has it); the first `images_per_split` images of each."""
    for split, lvis_split, folder in ((data.train, "train", "train2017"), (data.test, "val", "val2017")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        images = []
        for index, entry in enumerate(split.ground_truth["images"][:images_per_split]):
            name = f"{entry['id']:012d}.png"
            pixels = split.image(index).permute(1, 2, 0).squeeze(2).numpy()
            Image.fromarray(pixels).convert("RGB").save(root / folder / name)
            images.append({**entry, "coco_url": f"http://images.cocodataset.org/{folder}/{name}"})
        ids = {i["id"] for i in images}
        annotations = [a for a in split.ground_truth["annotations"] if a["image_id"] in ids]
        ground_truth = {"images": images, "annotations": annotations, "categories": data.categories}
        (root / f"lvis_{version}_{lvis_split}.json").write_text(json.dumps(ground_truth))
