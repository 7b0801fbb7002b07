"""iNaturalist 2018 from its official COCO-style annotations; reported on the official val set.

The official val set (3 images per class) is the test split, as in the literature
(classifier-balancing `test_split = 'val'`). No other labelled images exist, so the test-time
knobs are chosen on these same images; the description says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lt_bench.bounded_read import read_text
from lt_bench.data.base import DATASETS, DataOptions, DatasetSource, LongTailedData, Published, Recipe
from lt_bench.data.files import FileSplit, imagenet_transforms, required_root
from lt_bench.data.split_lists import Origins, SplitList, check_split_lists, files_digest
from lt_bench.errors import UserError

# iNat18 normalisation of the decoupling code base (Kang et al. 2020); no colour jitter there.
INAT_MEAN = (0.466, 0.471, 0.380)
INAT_STD = (0.195, 0.194, 0.192)
ANNOTATION_URL = "https://ml-inat-competition-datasets.s3.amazonaws.com/2018/"
FILES = {"train": "train2018.json", "val": "val2018.json"}


def read_annotations(path: Path, num_classes: int | None = None) -> tuple[SplitList, int]:
    """The images (file names, category ids, image ids) and the number of categories of a COCO-style JSON."""
    try:
        payload = json.loads(read_text(path, fix="extract the official annotation JSON again"))
        images, annotations, categories = payload["images"], payload["annotations"], payload["categories"]
        category_of = {annotation["image_id"]: annotation["category_id"] for annotation in annotations}
    except json.JSONDecodeError as error:
        raise UserError(
            f"{path} is not valid JSON ({error}); the file is truncated: extract it again"
        ) from error
    except (KeyError, TypeError) as error:
        raise UserError(
            f"{path} lacks COCO-style images / annotations / categories ({error!r}); use the official JSON"
        ) from error
    num_classes = len(categories) if num_classes is None else num_classes
    names, labels, ids = [], [], []
    for entry, image in enumerate(images, 1):
        label = category_of.get(image.get("id"))
        if label is None:
            raise UserError(f"{path}: image entry {entry} (id {image.get('id')}) has no annotation")
        if not 0 <= label < num_classes:
            raise UserError(f"{path}: image entry {entry} has category {label}, outside 0..{num_classes - 1}")
        names.append(image["file_name"])
        labels.append(label)
        ids.append(image["id"])
    if not names:
        raise UserError(f"{path} lists no images; extract the official JSON again")
    return SplitList(names, np.asarray(labels, dtype=np.int64), Origins(path, ids)), num_classes


@DATASETS.register("inat2018")
class INaturalist2018(DatasetSource):
    """iNaturalist 2018: 8,142 classes, 437,513 train, 24,426 val (reported on val)."""

    name = "inat2018"
    description = (
        "iNaturalist 2018 (official JSON): 8,142 classes, 437,513 train; reported on the 24,426 val images, "
        "which also pick the test-time knobs (no other labelled split exists)"
    )
    # The ImageNet-LT recipe, as decoupling trains iNat18 with the same schedule family.
    recipe = Recipe(backbone="resnet50", epochs=90, batch_size=512, lr=0.2, weight_decay=5e-4)
    validation_is_test = True

    def read(self, options: DataOptions) -> LongTailedData:
        root = required_root(options, self._where())
        paths = {split: root / file for split, file in FILES.items()}
        for path in paths.values():
            if not path.is_file():
                raise UserError(f"{path} is missing: {self._where()}")
        train_list, num_classes = read_annotations(paths["train"])
        val_list, _ = read_annotations(paths["val"], num_classes)
        lists = {"train": train_list, "val": val_list}
        check_split_lists(
            lists, self.published(options), num_classes=num_classes, custom=options.custom_lists, root=root
        )
        transforms = imagenet_transforms(INAT_MEAN, INAT_STD, color_jitter=False)
        train, val = (
            FileSplit.under(
                root, split_list, layouts=(str,), transforms=transforms, num_workers=options.num_workers
            )
            for split_list in (train_list, val_list)
        )
        return LongTailedData(
            name=self.name,
            num_classes=num_classes,
            train=train,
            val=val,
            test=val,
            class_counts=np.bincount(train_list.labels, minlength=num_classes).tolist(),
            in_chans=3,
            lists_digest=files_digest(self.split_list_files(root)) if options.custom_lists else None,
        )

    def published(self, options: DataOptions) -> Published:
        # The quoted many/medium/few numbers (842 / 4076 / 3224) were not recomputed; not checked.
        # No git blobs: the sizes and the class number are the published check of the JSON files.
        return Published(
            num_classes=8142,
            split_sizes={"train": 437_513, "val": 24_426, "test": 24_426},
            source="visipedia/inat_comp 2018 README",
        )

    def split_list_files(self, root: Path) -> tuple[Path, ...]:
        return tuple(root / file for file in FILES.values())

    def _where(self) -> str:
        return (
            f"inat2018 needs --data-root DIR with {FILES['train']} and {FILES['val']} (extract "
            f"{ANNOTATION_URL}train2018.json.tar.gz and val2018.json.tar.gz there) and the images "
            f"DIR/train_val2018/... (train_val2018.tar.gz from the same place)"
        )
