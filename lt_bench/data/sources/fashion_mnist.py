"""Fashion-MNIST-LT: the real 60k/10k Fashion-MNIST, long-tailed as CIFAR-LT; runs on a CPU in minutes."""

from __future__ import annotations

import gzip
from pathlib import Path

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

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist
TORCHVISION_FOLDER = Path("FashionMNIST/raw")  # under a torchvision root
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
# Mean and standard deviation of the 60,000 official training images, pixels in [0, 1].
MEAN, STD = (0.2860,), (0.3530,)
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049  # IDX headers: 0x00000803 (uint8, 3 dims), 0x00000801 (1 dim)


def read_idx(path: Path) -> np.ndarray:
    """A uint8 IDX file (gzipped or not): images [N, 28, 28] or labels [N]; UserError when malformed."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:
        raise UserError(
            f"{path} cannot be read ({error}); reinstall or re-download the Fashion-MNIST files"
        ) from error
    magic = int.from_bytes(data[:4], "big")
    if magic not in (IMAGE_MAGIC, LABEL_MAGIC):
        raise UserError(f"{path} is not a uint8 IDX file (magic {magic}); reinstall the Fashion-MNIST files")
    dims = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if values.size != int(np.prod(shape)):
        raise UserError(f"{path} holds {values.size} values, its header says {shape}: the file is truncated")
    return values.reshape(shape).copy()  # writable, as torch.from_numpy wants


def find_folder(data_root: Path | None) -> Path:
    """The first folder holding all four IDX files: the torchvision layout under the root, then Debian's."""
    candidates = [] if data_root is None else [data_root / TORCHVISION_FOLDER, data_root]
    candidates.append(DEBIAN_FOLDER)
    for folder in candidates:
        if all(_file(folder, name) for name in FILES.values()):
            return folder
    looked = ", ".join(str(folder) for folder in candidates)
    raise UserError(
        f"fashion_mnist_lt needs {', '.join(f + '[.gz]' for f in FILES.values())} in one of: {looked}; "
        f"run `apt-get install dataset-fashion-mnist`, or put torchvision's FashionMNIST/raw under "
        f"--data-root"
    )


def _file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


@DATASETS.register("fashion_mnist_lt")
class FashionMnistLT(DatasetSource):
    """Fashion-MNIST-LT: 6000 max per class at IR 100 (14,886 train), 20 val per class, official 10k test."""

    name = "fashion_mnist_lt"
    description = (
        "real Fashion-MNIST long-tailed like CIFAR: 6000 max per class, IR 100 (14,886 train), "
        "val from unused train images, official 10k test; apt-get install dataset-fashion-mnist"
    )
    # Sized for a CPU: the small CNN takes about 4.2 s of one core per epoch. Validation balanced accuracy
    # at 20 / 30 / 40 epochs: ce 69.4 / 75.0 / 78.9 %, balanced_softmax 82.2 / 83.3 / 84.4 % (never test).
    # 12 is the most that lets every method (21, BCL's three views and SADE's test-time adaptation
    # included) × 3 seeds finish within an hour on 2 cores.
    recipe = Recipe(backbone="lt_small_cnn", epochs=12, batch_size=128, lr=0.05, weight_decay=5e-4)
    default_imbalance_ratio = 100.0

    def read(self, options: DataOptions) -> LongTailedData:
        folder = find_folder(options.data_root)
        arrays = {key: read_idx(_file(folder, name)) for key, name in FILES.items()}
        for split in ("train", "test"):
            if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
                raise UserError(f"{folder}: {split} images and labels differ in number; reinstall the files")
            if arrays[f"{split}_labels"].max() >= len(CLASS_NAMES):
                raise UserError(
                    f"{folder / FILES[f'{split}_labels']}: labels outside 0..9; reinstall the files"
                )
        return in_memory_long_tailed(
            self.name,
            arrays["train_images"][:, None],
            arrays["train_labels"].astype(np.int64),
            arrays["test_images"][:, None],
            arrays["test_labels"].astype(np.int64),
            num_classes=len(CLASS_NAMES),
            imbalance_ratio=resolved_imbalance_ratio(options, self.default_imbalance_ratio),
            data_seed=options.data_seed,
            val_per_class=20,
            mean=MEAN,
            std=STD,
            augmentation=TensorAugmentation(crop_padding=2, horizontal_flip=True),
            class_names=CLASS_NAMES,
        )

    def published(self, options: DataOptions) -> Published:
        ratio = resolved_imbalance_ratio(options, self.default_imbalance_ratio)
        return Published(
            num_classes=10,
            split_sizes={"train": 14_886 if ratio == 100 else None, "val": None, "test": 10_000},
            shot_groups=(8, 2, 0) if ratio == 100 else None,
            source="Fashion-MNIST (Xiao et al. 2017): 60,000 train / 10,000 test; the CIFAR-LT profile",
        )
