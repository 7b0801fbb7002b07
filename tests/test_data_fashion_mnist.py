"""Fashion-MNIST-LT: IDX files written here in torchvision's layout, and Debian's real files."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lt_bench.cli import main
from lt_bench.data import DATASETS, DataOptions
from lt_bench.data.check import check_dataset
from lt_bench.data.sources.fashion_mnist import DEBIAN_FOLDER, read_idx
from lt_bench.errors import UserError

# Skipped on a machine without the Debian package; under CI (which installs it) a missing file fails.
needs_debian_data = pytest.mark.skipif(
    not (DEBIAN_FOLDER / "train-images-idx3-ubyte.gz").is_file() and os.environ.get("CI") != "true",
    reason="apt-get install dataset-fashion-mnist (.ci/run installs it)",
)


def write_idx(path: Path, values: np.ndarray) -> None:
    """A gzipped uint8 IDX file: magic 0x08 type byte, dimension count, big-endian sizes, then the bytes."""
    header = bytes([0, 0, 0x08, values.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in values.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + values.astype(np.uint8).tobytes())


def write_torchvision_tree(root: Path, per_class: int = 30) -> np.ndarray:
    folder = root / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    labels = np.tile(np.arange(10), per_class)
    images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
    images[:, 0, 0], images[:, 0, 1] = np.arange(len(labels)) % 256, np.arange(len(labels)) // 256  # image id
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images[:20])
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels[:20])
    return labels


def test_reads_the_torchvision_layout(tmp_path: Path) -> None:
    labels = write_torchvision_tree(tmp_path)
    data = DATASETS.get("fashion_mnist_lt")().load(DataOptions(data_root=tmp_path, imbalance_ratio=10))
    counts = [30, 23, 17, 13, 10, 8, 6, 5, 3, 3]  # int(30 · 0.1^(c/9))
    assert data.class_counts == counts and data.in_chans == 1
    train_ids, val_ids = _ids(data.train.images), _ids(data.val.images)
    assert [int(labels[i]) for i in train_ids] == data.train.labels.tolist()
    assert not set(train_ids) & set(val_ids)
    assert torch.bincount(data.val.labels, minlength=10).tolist() == [min(20, 30 - n) for n in counts]
    assert _ids(data.test.images) == list(range(20))


def _ids(images: torch.Tensor) -> list[int]:
    return (images[:, 0, 0, 0].long() + 256 * images[:, 0, 0, 1].long()).tolist()


def test_malformed_idx_files_are_named(tmp_path: Path) -> None:
    write_torchvision_tree(tmp_path)
    path = tmp_path / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte.gz"
    payload = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(payload[:-5]))
    with pytest.raises(
        UserError, match=r"train-labels-idx1-ubyte.gz holds 295 values, its header says \(300,\)"
    ):
        read_idx(path)
    path.write_bytes(gzip.compress(b"\x00\x00\x09\x01" + payload[4:]))
    with pytest.raises(UserError, match="is not a uint8 IDX file"):
        read_idx(path)


@needs_debian_data
def test_real_fashion_mnist_matches_the_published_sizes() -> None:
    report = check_dataset("fashion_mnist_lt", DataOptions())
    assert report.split_sizes == {"train": 14_886, "val": 180, "test": 10_000}
    assert report.shot_groups == (8, 2, 0)
    data = DATASETS.get("fashion_mnist_lt")().load(DataOptions())
    assert data.class_counts == [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10
    # Class 0 uses all its 6000 training images, so it has no validation images; no image is in both.
    assert torch.bincount(data.val.labels, minlength=10).tolist() == [0] + [20] * 9
    train_rows = {row.tobytes() for row in data.train.images.numpy()}
    assert not any(row.tobytes() in train_rows for row in data.val.images.numpy())


@needs_debian_data
def test_data_check_command_prints_counts_and_shot_groups(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", "fashion_mnist_lt"]) == 0
    out = capsys.readouterr().out
    assert "train    14,886 images  (published 14,886)" in out
    assert "many / medium / few classes: 8 / 2 / 0" in out
    assert main(["data", "check", "fashion_mnist_lt", "--imbalance-ratio", "0.5"]) == 2
    assert "--imbalance-ratio must be a number >= 1" in capsys.readouterr().err
