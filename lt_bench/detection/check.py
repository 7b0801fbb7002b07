"""`lt-bench data check` for instance segmentation sets: load (checking files, ids, tags), summarise."""

from __future__ import annotations

from pathlib import Path

from lt_bench.detection.data import DETECTION_DATASETS, FREQUENCY_GROUPS, images_per_category


def check_detection_dataset(name: str, data_root: Path | None, data_seed: int) -> list[str]:
    """Summary lines of a loaded dataset; a missing image, unknown id or missing tag fails in one line."""
    data = DETECTION_DATASETS.get(name)().read(data_root, data_seed)
    tags = [c["frequency"] for c in data.categories]
    with_images = sum(1 for count in images_per_category(data.train.ground_truth).values() if count)
    lines = [
        f"{name}: {len(tags)} categories, {with_images} with training images; "
        + ", ".join(f"{group} {tags.count(tag)}" for tag, group in FREQUENCY_GROUPS.items())
    ]
    for split_name in ("train", "val", "test"):
        split = getattr(data, split_name)
        lines.append(
            f"  {split_name:<5} {len(split):>9,} images "
            f"{len(split.ground_truth['annotations']):>10,} instances"
        )
    return lines
