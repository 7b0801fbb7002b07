"""ImageNet-LT and Places-LT: the split lists of the OLTR project (Liu et al. 2019) over the user's images.

The lists (one `relative/path label` per line) are the ones classifier-balancing redistributes;
their git blobs and sizes are those of facebookresearch/classifier-balancing `data/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from lt_bench.data.base import DATASETS, DataOptions, DatasetSource, LongTailedData, Published, Recipe
from lt_bench.data.files import FileSplit, imagenet_transforms, required_root
from lt_bench.data.split_lists import check_split_lists, ensure_list, files_digest, read_path_label_list

# ResNeXt-50, 90 epochs, global batch 512, lr 0.2, cosine, wd 5e-4 (the TDE / decoupling recipe).
OLTR_RECIPE = Recipe(backbone="resnext50_32x4d", epochs=90, batch_size=512, lr=0.2, weight_decay=5e-4)
LIST_URL = "https://raw.githubusercontent.com/facebookresearch/classifier-balancing/main/data/{folder}/{file}"
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class OltrLists:
    """One dataset's lists: file names, accepted git blobs, published sizes and class groups."""

    folder: str  # the folder of classifier-balancing's data/ that holds the lists
    prefix: str  # e.g. "ImageNet_LT" for ImageNet_LT_train.txt
    blobs: dict[str, tuple[str, ...]]
    sizes: dict[str, int]
    shot_groups: tuple[int, int, int]

    def file(self, split: str) -> str:
        return f"{self.prefix}_{split}.txt"


def places365_official(relative: str) -> str:
    """A Places-LT list path in the official Places365-Standard 256×256 layout (Zhou et al. 2017):
    train/<a-b>/<f> → data_256/<a>/<a/b>/<f>; val/<class>/<f> → val_256/<f>."""
    split, category, name = relative.split("/", 2)
    if split == "val":
        return f"val_256/{name}"
    return f"data_256/{category[0]}/{category.replace('-', '/')}/{name}"


def places365_torchvision(relative: str) -> str:
    """As `places365_official`, with torchvision's renamed train folder data_256_standard/."""
    mapped = places365_official(relative)
    return mapped.replace("data_256/", "data_256_standard/", 1) if mapped.startswith("data_256/") else mapped


def as_listed(relative: str) -> str:
    return relative


class OltrDataset(DatasetSource):
    """A dataset given by OLTR lists under --data-root and images in the layouts it knows."""

    name: ClassVar[str]
    num_classes: ClassVar[int]
    lists: ClassVar[OltrLists]
    layouts: ClassVar[tuple[Callable[[str], str], ...]] = (as_listed,)
    images_hint: ClassVar[str]
    recipe = OLTR_RECIPE

    def read(self, options: DataOptions) -> LongTailedData:
        root = required_root(options, self._where())
        lists = {
            split: read_path_label_list(self._list_path(root, split, options.download), self.num_classes)
            for split in SPLITS
        }
        check_split_lists(
            lists,
            self.published(options),
            num_classes=self.num_classes,
            custom=options.custom_lists,
            root=root,
        )
        transforms = imagenet_transforms()
        splits = {
            split: FileSplit.under(
                root,
                lists[split],
                layouts=self.layouts,
                transforms=transforms,
                num_workers=options.num_workers,
            )
            for split in SPLITS
        }
        return LongTailedData(
            name=self.name,
            num_classes=self.num_classes,
            train=splits["train"],
            val=splits["val"],
            test=splits["test"],
            class_counts=torch.bincount(splits["train"].labels, minlength=self.num_classes).tolist(),
            in_chans=3,
            lists_digest=files_digest(self.split_list_files(root)) if options.custom_lists else None,
        )

    def published(self, options: DataOptions) -> Published:
        root = required_root(options, self._where())
        return Published(
            num_classes=self.num_classes,
            split_sizes=dict(self.lists.sizes),
            shot_groups=self.lists.shot_groups,
            list_files={split: (root / self.lists.file(split), self.lists.blobs[split]) for split in SPLITS},
            source="OLTR split lists (Liu et al. 2019) as classifier-balancing ships them",
        )

    def split_list_files(self, root: Path) -> tuple[Path, ...]:
        return tuple(root / self.lists.file(split) for split in SPLITS)

    def _where(self) -> str:
        files = ", ".join(self.lists.file(split) for split in SPLITS)
        url = LIST_URL.format(folder=self.lists.folder, file="")
        return (
            f"{self.name} needs --data-root DIR with {self.images_hint} and the lists {files} in DIR "
            f"(from {url}; add --download to fetch them)"
        )

    def _list_path(self, root: Path, split: str, download: bool) -> Path:
        file = self.lists.file(split)
        url = LIST_URL.format(folder=self.lists.folder, file=file)
        return ensure_list(root / file, url, self.lists.blobs[split], download=download, where=self._where())


@DATASETS.register("imagenet_lt")
class ImageNetLT(OltrDataset):
    """ImageNet-LT: 1000 classes, train 115,846 (1280 … 5 per class), val 20,000, test 50,000."""

    description = (
        "ImageNet-LT (OLTR lists): 1000 classes, 115,846 train / 20,000 val / 50,000 test; "
        "images from image-net.org"
    )
    name = "imagenet_lt"
    num_classes = 1000
    images_hint = (
        "the ILSVRC-2012 images as DIR/train/<wnid>/*.JPEG and DIR/val/<wnid>/*.JPEG (image-net.org, login)"
    )
    lists = OltrLists(
        folder="ImageNet_LT",
        prefix="ImageNet_LT",
        blobs={
            "train": ("a063f095fcd475db4cf8b0658c4b73955535bbf9",),
            "val": ("3ed3188b2f44829ce2dec1cc27040d8d40984088",),
            # class-folder val paths (classifier-balancing) or a flat val folder (the TDE repo)
            "test": ("76a2fb9749d6cd29e765cc4f8c270f2504131e2f", "0b447ac5396339be4de1a91cb5b2b8cc7c73fb4b"),
        },
        sizes={"train": 115_846, "val": 20_000, "test": 50_000},
        shot_groups=(385, 479, 136),
    )


@DATASETS.register("places_lt")
class PlacesLT(OltrDataset):
    """Places-LT: 365 classes, train 62,500 (4980 … 5 per class), val 7,300, test 36,500."""

    description = (
        "Places-LT (OLTR lists): 365 classes, 62,500 train / 7,300 val / 36,500 test; "
        "Places365 256x256 images"
    )
    name = "places_lt"
    num_classes = 365
    images_hint = (
        "the Places365-Standard 256x256 images (DIR/data_256/ or torchvision's DIR/data_256_standard/, and "
        "DIR/val_256/, from http://data.csail.mit.edu/places/places365/, or a tree matching the list paths)"
    )
    layouts = (as_listed, places365_official, places365_torchvision)
    lists = OltrLists(
        folder="Places_LT",
        prefix="Places_LT",
        blobs={
            "train": ("6392252f8ae867bc8a5e841cc1b29e5b8ef4b636",),
            "val": ("b93a2ca58ccb7f3b671c176f395a70bf52c95533",),
            "test": ("e732e58b8aa718a2c1c11933375f5710652c2b93",),
        },
        sizes={"train": 62_500, "val": 7_300, "test": 36_500},
        shot_groups=(131, 163, 71),
    )
