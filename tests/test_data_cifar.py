"""CIFAR-10/100-LT read from tiny trees of real CIFAR python pickles written here."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from lt_bench.cli import main
from lt_bench.data import DATASETS, DataOptions, long_tailed_counts
from lt_bench.data.check import check_dataset
from lt_bench.data.subsets import long_tailed_subset
from lt_bench.errors import UserError
from lt_bench.records import read_record

PER_CLASS = 40  # training images per class in the fixture (the real files have 5000 / 500)
TEST_PER_CLASS = 3


def _images(first_id: int, count: int) -> np.ndarray:
    """N×3072 uint8 rows whose red plane starts with the image id (base 256), so ids can be read back."""
    rows = np.random.default_rng(first_id).integers(0, 256, size=(count, 3072), dtype=np.uint8)
    ids = np.arange(first_id, first_id + count)
    rows[:, 0], rows[:, 1] = ids % 256, ids // 256
    return rows


def _ids(images: torch.Tensor) -> list[int]:
    """Image ids of a split's uint8 [N, 3, 32, 32] images (red plane, first two pixels)."""
    return (images[:, 0, 0, 0].long() + 256 * images[:, 0, 0, 1].long()).tolist()


def _labels(num_classes: int, per_class: int, seed: int) -> list[int]:
    labels = np.repeat(np.arange(num_classes), per_class)
    np.random.default_rng(seed).shuffle(labels)
    return labels.tolist()


def _dump(path: Path, payload: dict) -> None:
    with path.open("wb") as handle:
        pickle.dump(payload, handle)


def write_cifar10(root: Path) -> tuple[list[int], list[int]]:
    """cifar-10-batches-py/ with five training batches, a test batch and batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_labels = _labels(10, PER_CLASS, 0)
    per_batch = len(train_labels) // 5
    for batch in range(5):
        labels = train_labels[batch * per_batch : (batch + 1) * per_batch]
        _dump(
            folder / f"data_batch_{batch + 1}",
            {"data": _images(batch * per_batch, per_batch), "labels": labels},
        )
    test_labels = _labels(10, TEST_PER_CLASS, 1)
    _dump(folder / "test_batch", {"data": _images(10_000, len(test_labels)), "labels": test_labels})
    _dump(folder / "batches.meta", {"label_names": [f"class{c}" for c in range(10)]})
    return train_labels, test_labels


def ldam_subset(labels: list[int], counts: list[int], seed: int) -> set[int]:
    """LDAM-DRW's selection, written out: one RandomState, per class shuffle its indices, keep the first n."""
    state = np.random.RandomState(seed)
    kept: set[int] = set()
    for class_index, count in enumerate(counts):
        indices = np.where(np.asarray(labels) == class_index)[0]
        state.shuffle(indices)
        kept.update(indices[:count].tolist())
    return kept


def test_published_training_totals() -> None:
    totals = {ratio: sum(long_tailed_counts(5000, 10, ratio)) for ratio in (100, 50, 10, 200)}
    assert totals == {100: 12_406, 50: 13_996, 10: 20_431, 200: 11_203}
    totals = {ratio: sum(long_tailed_counts(500, 100, ratio)) for ratio in (100, 50, 10, 200)}
    assert totals == {100: 10_847, 50: 12_608, 10: 19_573, 200: 9_502}


def test_cifar10_lt_is_the_ldam_subset_with_left_out_validation(tmp_path: Path) -> None:
    train_labels, test_labels = write_cifar10(tmp_path)
    data = DATASETS.get("cifar10_lt")().load(DataOptions(data_root=tmp_path, imbalance_ratio=10))
    counts = [40, 30, 23, 18, 14, 11, 8, 6, 5, 4]  # int(40 · 0.1^(c/9))
    assert data.class_counts == counts
    assert data.class_names == [f"class{c}" for c in range(10)]
    train_ids = _ids(data.train.images)
    assert set(train_ids) == ldam_subset(train_labels, counts, seed=0)
    assert data.train.labels.tolist() == [train_labels[i] for i in train_ids]
    val_ids = _ids(data.val.images)
    assert not set(val_ids) & set(train_ids)
    assert data.val.labels.tolist() == [train_labels[i] for i in val_ids]
    # 20 per class from the images the subset left out; class 0 is used whole, class 1 leaves 10.
    assert torch.bincount(data.val.labels, minlength=10).tolist() == [min(20, 40 - n) for n in counts]
    assert _ids(data.test.images) == list(range(10_000, 10_000 + len(test_labels)))
    assert data.test.labels.tolist() == test_labels
    # LDAM-DRW normalisation: red value v becomes (v/255 − 0.4914)/0.2023; test image 0 has v = 10000 mod 256.
    ((images, _),) = data.test.batches([(0, torch.tensor([0]))], train=False, device=torch.device("cpu"))
    assert images[0, 0, 0, 0].item() == pytest.approx((10_000 % 256 / 255 - 0.4914) / 0.2023, abs=1e-5)


def test_every_class_the_profile_does_not_use_whole_has_twenty_disjoint_validation_images() -> None:
    # The real CIFAR-10 at IR 100: 5000, 2997, …, 50 training images; the head class is used whole.
    labels = np.repeat(np.arange(10), 5000)
    train, val = long_tailed_subset(labels, 10, 100.0, data_seed=3, val_per_class=20)
    assert np.bincount(labels[val], minlength=10).tolist() == [0] + [20] * 9
    assert not set(train.tolist()) & set(val.tolist())


def test_a_ratio_that_keeps_every_image_is_refused_for_want_of_validation_images(
    tmp_path: Path, capsys
) -> None:
    write_cifar10(tmp_path)
    with pytest.raises(UserError, match="none is left for a validation split"):
        DATASETS.get("cifar10_lt")().load(DataOptions(data_root=tmp_path, imbalance_ratio=1))
    run = ["run", "--method", "ce", "--dataset", "cifar10_lt", "--data-root", str(tmp_path)]
    assert main([*run, "--imbalance-ratio", "1", "--output", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.endswith("pass an --imbalance-ratio above 1") and len(error.splitlines()) == 1


def test_data_seed_draws_another_subset(tmp_path: Path) -> None:
    train_labels, _ = write_cifar10(tmp_path)
    source = DATASETS.get("cifar10_lt")()
    first = set(
        _ids(source.load(DataOptions(data_root=tmp_path, imbalance_ratio=10, data_seed=0)).train.images)
    )
    again = set(
        _ids(source.load(DataOptions(data_root=tmp_path, imbalance_ratio=10, data_seed=0)).train.images)
    )
    other = set(
        _ids(source.load(DataOptions(data_root=tmp_path, imbalance_ratio=10, data_seed=1)).train.images)
    )
    assert first == again
    assert other != first and other == ldam_subset(train_labels, [40, 30, 23, 18, 14, 11, 8, 6, 5, 4], seed=1)


def test_cifar100_layout(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    labels = _labels(100, 6, 2)
    _dump(folder / "train", {"data": _images(0, len(labels)), "fine_labels": labels, "coarse_labels": labels})
    _dump(folder / "test", {"data": _images(5000, 100), "fine_labels": list(range(100))})
    _dump(folder / "meta", {"fine_label_names": [f"n{c}" for c in range(100)]})
    data = DATASETS.get("cifar100_lt")().load(DataOptions(data_root=tmp_path, imbalance_ratio=2))
    assert data.class_counts == long_tailed_counts(6, 100, 2)
    assert len(data.test) == 100 and data.num_classes == 100 and data.in_chans == 3


def test_missing_and_corrupt_files_name_the_path(tmp_path: Path) -> None:
    source = DATASETS.get("cifar10_lt")()
    with pytest.raises(
        UserError, match=r"cifar-10-batches-py/data_batch_1 is missing: .*cifar-10-python.tar.gz"
    ):
        source.load(DataOptions(data_root=tmp_path))
    with pytest.raises(UserError, match="needs --data-root"):
        source.load(DataOptions())
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04truncated")
    with pytest.raises(UserError, match="data_batch_3 is not a CIFAR python batch"):
        source.load(DataOptions(data_root=tmp_path))


def test_pickles_with_bytes_keys_load_like_the_official_ones(tmp_path: Path) -> None:
    """Copies re-saved after `pickle.load(..., encoding="bytes")` have b"data", b"labels", bytes names."""
    write_cifar10(tmp_path / "official")
    write_cifar10(tmp_path / "resaved")
    for path in (tmp_path / "resaved" / "cifar-10-batches-py").iterdir():
        payload = pickle.loads(path.read_bytes())
        names = {"label_names": [name.encode() for name in payload.get("label_names", [])]}
        _dump(path, {key.encode(): names.get(key, value) for key, value in payload.items()})
    assert b"labels" in pickle.loads((tmp_path / "resaved/cifar-10-batches-py/data_batch_1").read_bytes())
    source = DATASETS.get("cifar10_lt")()
    official = source.load(DataOptions(data_root=tmp_path / "official", imbalance_ratio=10))
    resaved = source.load(DataOptions(data_root=tmp_path / "resaved", imbalance_ratio=10))
    assert resaved.class_names == official.class_names == [f"class{c}" for c in range(10)]
    assert resaved.class_counts == [40, 30, 23, 18, 14, 11, 8, 6, 5, 4]
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(resaved, split).images, getattr(official, split).images)
        assert torch.equal(getattr(resaved, split).labels, getattr(official, split).labels)


def test_a_batch_without_the_cifar_fields_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    _dump(path, {"images": _images(0, 3), "labels": [0, 1, 2]})
    with pytest.raises(UserError, match=r"test_batch lacks the CIFAR fields \['data'\]; extract"):
        DATASETS.get("cifar10_lt")().load(DataOptions(data_root=tmp_path))


def test_data_check_reports_the_difference_from_the_published_total(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    total = sum(long_tailed_counts(PER_CLASS, 10, 100))  # the default ratio, 40 per class: 95, not 12,406
    with pytest.raises(
        UserError, match=f"cifar10_lt train split has {total} images, the published one 12,406"
    ):
        check_dataset("cifar10_lt", DataOptions(data_root=tmp_path))


def test_lt_bench_run_on_cifar_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cifar10(tmp_path / "data")
    output = tmp_path / "results"
    code = main(
        [
            "run",
            "--method",
            "ce",
            "--dataset",
            "cifar10_lt",
            "--data-root",
            str(tmp_path / "data"),
            "--backbone",
            "lt_small_cnn",
            "--epochs",
            "1",
            "--warmup-epochs",
            "0",
            "--milestones",  # none: CIFAR's 160, 180 of 200 would both fall on epoch 0
            "--batch-size",
            "32",
            "--imbalance-ratio",
            "10",
            "--output",
            str(output),
        ]
    )
    assert code == 0
    (record_path,) = (output / "records").glob("*.json")
    record = read_record(record_path)
    assert record["class_counts"] == [40, 30, 23, 18, 14, 11, 8, 6, 5, 4]
    assert record["config"]["lr"] == pytest.approx(0.1 * 32 / 128)  # recipe lr scaled with the batch
    assert len(record["test_labels"]) == 30
    assert "lr 0.1 × batch 32/128 = 0.025" in capsys.readouterr().err
