"""iNaturalist 2018 from COCO-style JSON annotations written here, over real JPEG files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lt_bench.cli import main
from lt_bench.data import DATASETS, DataOptions
from lt_bench.errors import UserError
from lt_bench.records import read_record


def write_inat(root: Path, train_per_class: tuple[int, ...] = (4, 2, 1)) -> None:
    """train2018.json / val2018.json in the official schema; file names under train_val2018/<super>/<id>/."""
    categories = [
        {"id": c, "name": f"species {c}", "supercategory": "Plantae"} for c in range(len(train_per_class))
    ]
    next_id = 0
    for name, per_class in (
        ("train2018.json", train_per_class),
        ("val2018.json", (1,) * len(train_per_class)),
    ):
        images, annotations = [], []
        for category, count in enumerate(per_class):
            for _ in range(count):
                file_name = f"train_val2018/Plantae/{category}/{next_id:04x}.jpg"
                path = root / file_name
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((24, 32, 3), next_id * 9 % 256, dtype=np.uint8)).save(path)
                images.append({"id": next_id, "file_name": file_name, "width": 32, "height": 24})
                annotations.append({"id": next_id, "image_id": next_id, "category_id": category})
                next_id += 1
        payload = {"images": images, "annotations": annotations, "categories": categories}
        (root / name).write_text(json.dumps(payload))


def test_inat2018_reads_the_official_json(tmp_path: Path) -> None:
    write_inat(tmp_path)
    data = DATASETS.get("inat2018")().load(DataOptions(data_root=tmp_path, custom_lists=True))
    assert data.num_classes == 3 and data.class_counts == [4, 2, 1]
    assert data.test is data.val and data.val.labels.tolist() == [0, 1, 2]
    assert data.train.paths[4] == str(tmp_path / "train_val2018/Plantae/1/0004.jpg")
    ((images, labels),) = data.val.batches([(0, torch.arange(3))], train=False, device=torch.device("cpu"))
    assert images.shape == (3, 3, 224, 224) and labels.tolist() == [0, 1, 2]


def test_malformed_annotations_are_named(tmp_path: Path) -> None:
    write_inat(tmp_path)
    source = DATASETS.get("inat2018")()
    path = tmp_path / "val2018.json"
    payload = json.loads(path.read_text())
    payload["annotations"][1]["category_id"] = 3
    path.write_text(json.dumps(payload))
    with pytest.raises(UserError, match=r"val2018.json: image entry 2 has category 3, outside 0..2"):
        source.load(DataOptions(data_root=tmp_path, custom_lists=True))
    path.write_text(json.dumps(payload)[:-40])
    with pytest.raises(UserError, match="val2018.json is not valid JSON .* truncated"):
        source.load(DataOptions(data_root=tmp_path, custom_lists=True))
    write_inat(tmp_path)
    (tmp_path / "train_val2018/Plantae/0/0000.jpg").unlink()
    with pytest.raises(UserError, match=r"0000.jpg \(train2018.json image id 0\) does not exist"):
        source.load(DataOptions(data_root=tmp_path, custom_lists=True))
    (tmp_path / "train2018.json").unlink()
    with pytest.raises(UserError, match=r"train2018.json is missing: inat2018 needs --data-root DIR"):
        source.load(DataOptions(data_root=tmp_path, custom_lists=True))


def test_annotations_that_are_not_the_published_ones_need_custom_lists(tmp_path: Path) -> None:
    write_inat(tmp_path)
    with pytest.raises(
        UserError,
        match=r"train2018.json is not the published train list \(7 images, published 437,513\); .* "
        r"pass --custom-lists",
    ):
        DATASETS.get("inat2018")().load(DataOptions(data_root=tmp_path))


def test_a_val_image_also_in_training_is_named_by_its_image_id(tmp_path: Path) -> None:
    write_inat(tmp_path)
    path = tmp_path / "val2018.json"
    payload = json.loads(path.read_text())
    payload["images"][2]["file_name"] = "train_val2018/Plantae/2/0006.jpg"  # train image id 6
    path.write_text(json.dumps(payload))
    with pytest.raises(
        UserError,
        match=r"val2018.json image id 9 lists train_val2018/Plantae/2/0006.jpg, also a training image "
        r"\(train2018.json image id 6\)",
    ):
        DATASETS.get("inat2018")().load(DataOptions(data_root=tmp_path, custom_lists=True))


def test_data_check_decodes_the_shared_val_and_test_split_once(tmp_path: Path, capsys) -> None:
    write_inat(tmp_path)
    (tmp_path / "train_val2018/Plantae/0/0001.jpg").write_bytes(b"")
    argv = ["data", "check", "inat2018", "--data-root", str(tmp_path), "--custom-lists", "--decode"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "decoded 10 images: 1 unreadable" in captured.out  # 7 train + 3 val (the test split)
    assert f"{tmp_path}/train_val2018/Plantae/0/0001.jpg (train2018.json image id 1) cannot be decoded" in (
        captured.out
    )
    assert captured.err.startswith("lt-bench: error: images that cannot be decoded: 1 (named above)")


def test_the_shared_val_and_test_split_is_evaluated_once(tmp_path: Path, monkeypatch) -> None:
    """Features extracted once; the knob candidates scored by accuracy alone, the full metric suite
    (per-class tables, calibration, F1) computed once, on the chosen knobs."""
    import lt_bench.runner as runner

    calls = {"extract_features": 0, "classification_metrics": 0}

    def counted(name):
        function = getattr(runner, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    for name in calls:
        monkeypatch.setattr(runner, name, counted(name))
    write_inat(tmp_path / "inat")
    argv = ["run", "--method", "causal_tde", "--dataset", "inat2018", "--data-root", str(tmp_path / "inat")]
    argv += ["--custom-lists", "--backbone", "lt_small_cnn", "--epochs", "1", "--batch-size", "4"]
    argv += ["--val-every", "0", "--threads", "1", "--output", str(tmp_path / "out")]
    assert main(argv) == 0
    assert calls == {"extract_features": 1, "classification_metrics": 1}
    (record_file,) = (tmp_path / "out" / "records").glob("*.json")
    record = read_record(record_file)
    assert len(record["knobs"]["validation"]) > 1  # every alpha candidate was still scored
    assert record["metrics"]["val"] == record["metrics"]["test"]  # the same images and logits
    best = max(record["knobs"]["validation"], key=lambda entry: entry["balanced_accuracy"])
    assert best["balanced_accuracy"] == record["metrics"]["test"]["balanced_accuracy"]
