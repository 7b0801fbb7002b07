"""CIFAR-10-LT and CIFAR-100-LT: the LDAM-DRW construction over the official python batches."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from lt_bench.data.base import (
    DATASETS,
    DataOptions,
    DatasetSource,
    LongTailedData,
    Published,
    Recipe,
    TensorAugmentation,
)
from lt_bench.data.subsets import in_memory_long_tailed, resolved_imbalance_ratio
from lt_bench.errors import UserError

# LDAM-DRW's normalisation and augmentation for both CIFARs (kaidic/LDAM-DRW `cifar_train.py`).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
CIFAR_AUGMENTATION = TensorAugmentation(crop_padding=4, horizontal_flip=True)
# ResNet-32, 200 epochs, batch 128, lr 0.1, wd 2e-4, 5 warm-up epochs, lr ×0.01 at 160 and ×0.0001
# at 180 (kaidic/LDAM-DRW `cifar_train.py`, `adjust_learning_rate`).
CIFAR_RECIPE = Recipe(
    backbone="resnet32_cifar",
    epochs=200,
    batch_size=128,
    lr=0.1,
    weight_decay=2e-4,
    schedule="multistep",
    warmup_epochs=5,
    milestones=(160, 180),
    lr_decay=0.01,
)
VAL_PER_CLASS = 20


@dataclass(frozen=True)
class CifarFiles:
    """Where torchvision puts one CIFAR's python batches, and how they name their labels."""

    folder: str
    train: tuple[str, ...]
    test: str
    meta: str
    label_key: str
    names_key: str
    archive_url: str
    archive_md5: str


def _read_pickle(path: Path, keys: tuple[str, ...]) -> dict:
    """A CIFAR pickle as a dict with str keys, holding `keys`. Copies saved after loading with
    encoding="bytes" have bytes keys (b"data", b"labels") and bytes class names: both are accepted."""
    if not path.is_file():
        raise FileNotFoundError(path)
    try:
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise UserError(
            f"{path} is not a CIFAR python batch ({error}); extract the official archive again"
        ) from error
    fields = {_text(key): value for key, value in batch.items()} if isinstance(batch, dict) else {}
    missing = [key for key in keys if key not in fields]
    if missing:
        raise UserError(f"{path} lacks the CIFAR fields {missing}; extract the official archive again")
    return fields


def _text(value: str | bytes) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else value


def _read_batches(paths: list[Path], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, 3, 32, 32] and int64 labels of the batches, in file order."""
    images, labels = [], []
    for path in paths:
        batch = _read_pickle(path, ("data", label_key))
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(batch[label_key]) != len(data):
            raise UserError(
                f"{path} does not hold N×3072 images with one label each; extract the archive again"
            )
        images.append(data.reshape(-1, 3, 32, 32))  # rows are the R, G and B planes, 32×32 each
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


class CifarLT(DatasetSource):
    """A long-tailed CIFAR: exponential profile over the official training batches, official test."""

    name: ClassVar[str]
    files: ClassVar[CifarFiles]
    num_classes: ClassVar[int]
    recipe = CIFAR_RECIPE
    default_imbalance_ratio = 100.0
    # Published training total and many/medium/few class numbers per imbalance ratio.
    published_by_ratio: ClassVar[dict[float, tuple[int, tuple[int, int, int]]]]

    def read(self, options: DataOptions) -> LongTailedData:
        ratio = resolved_imbalance_ratio(options, self.default_imbalance_ratio)
        folder = self._folder(options)
        try:
            train_images, train_labels = _read_batches(
                [folder / f for f in self.files.train], self.files.label_key
            )
            test_images, test_labels = _read_batches([folder / self.files.test], self.files.label_key)
            meta = _read_pickle(folder / self.files.meta, (self.files.names_key,))
            class_names = [_text(name) for name in meta[self.files.names_key]]
        except FileNotFoundError as error:
            raise UserError(f"{error.args[0]} is missing: {self._where()}") from error
        for path, labels in (
            (folder / self.files.train[0], train_labels),
            (folder / self.files.test, test_labels),
        ):
            if labels.min() < 0 or labels.max() >= self.num_classes:
                raise UserError(
                    f"{path} has labels outside 0..{self.num_classes - 1}; extract the archive again"
                )
        return in_memory_long_tailed(
            self.name,
            train_images,
            train_labels,
            test_images,
            test_labels,
            num_classes=self.num_classes,
            imbalance_ratio=ratio,
            data_seed=options.data_seed,
            val_per_class=VAL_PER_CLASS,
            mean=CIFAR_MEAN,
            std=CIFAR_STD,
            augmentation=CIFAR_AUGMENTATION,
            class_names=class_names,
        )

    def published(self, options: DataOptions) -> Published:
        ratio = resolved_imbalance_ratio(options, self.default_imbalance_ratio)
        train_size, shot_groups = self.published_by_ratio.get(ratio, (None, None))
        return Published(
            num_classes=self.num_classes,
            split_sizes={"train": train_size, "val": None, "test": 10_000},
            shot_groups=shot_groups,
            source="LDAM-DRW construction (Cao et al. 2019; kaidic/LDAM-DRW imbalance_cifar.py)",
        )

    def _where(self) -> str:
        return (
            f"put the python batches in DIR/{self.files.folder}/ (extract {self.files.archive_url}, md5 "
            f"{self.files.archive_md5}) and pass --data-root DIR, or add --download when a network is there"
        )

    def _folder(self, options: DataOptions) -> Path:
        if options.data_root is None:
            raise UserError(f"{self.name} needs --data-root: {self._where()}")
        if options.download:
            _download(self.num_classes, options.data_root)
        return options.data_root / self.files.folder


def _download(num_classes: int, root: Path) -> None:
    """Fetch and extract the official archive through torchvision (which checks its md5)."""
    from torchvision import datasets

    dataset = datasets.CIFAR10 if num_classes == 10 else datasets.CIFAR100
    try:
        dataset(str(root), train=True, download=True)
    except OSError as error:  # URLError is an OSError: no network, or the server refused
        raise UserError(
            f"downloading CIFAR into {root} failed ({error}); copy the archive there by hand"
        ) from error


@DATASETS.register("cifar10_lt")
class Cifar10LT(CifarLT):
    name = "cifar10_lt"
    description = "CIFAR-10-LT (LDAM-DRW): 5000 max per class, --imbalance-ratio 10/50/100/200 (default 100)"
    num_classes = 10
    files = CifarFiles(
        folder="cifar-10-batches-py",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test="test_batch",
        meta="batches.meta",
        label_key="labels",
        names_key="label_names",
        archive_url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        archive_md5="c58f30108f718f92721af3b95e74349a",
    )
    # Training totals and class groups (>100 / 20–100 / <20) per IR (Cao et al. 2019, their construction).
    published_by_ratio = {
        100.0: (12_406, (8, 2, 0)),
        50.0: (13_996, (9, 1, 0)),
        10.0: (20_431, (10, 0, 0)),
        200.0: (11_203, (7, 3, 0)),
    }


@DATASETS.register("cifar100_lt")
class Cifar100LT(CifarLT):
    name = "cifar100_lt"
    description = "CIFAR-100-LT (LDAM-DRW): 500 max per class, --imbalance-ratio 10/50/100/200 (default 100)"
    num_classes = 100
    files = CifarFiles(
        folder="cifar-100-python",
        train=("train",),
        test="test",
        meta="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        archive_url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        archive_md5="eb9058c3a382ffc7106e4002c42a8d85",
    )
    published_by_ratio = {
        100.0: (10_847, (35, 35, 30)),
        50.0: (12_608, (41, 41, 18)),
        10.0: (19_573, (69, 31, 0)),
        200.0: (9_502, (30, 31, 39)),
    }
