"""lvis_v1 / lvis_v0.5 from a generated LVIS-format tree: loads, checks, and fails in one line when broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lt_bench.cli import main
from lt_bench.detection import lvis_tree
from lt_bench.detection.data import DETECTION_DATASETS, DetectionSplit

torch.set_num_threads(1)


def write_lvis_tree(root: Path, version: str = "v1", images_per_split: int = 6) -> None:
    """The first canvases of mnist_lt_seg's train and test splits as an LVIS tree."""
    data = DETECTION_DATASETS.get("mnist_lt_seg")().read(None, 0)
    lvis_tree.write_lvis_tree(data, root, version, images_per_split)


def test_a_generated_tree_loads_with_its_images_and_tags(tmp_path: Path) -> None:
    write_lvis_tree(tmp_path)
    data = DETECTION_DATASETS.get("lvis_v1")().read(tmp_path, 0)
    assert (len(data.train), len(data.val), len(data.test)) == (5, 1, 6)  # 1 % of train, at least one
    assert "".join(c["frequency"] for c in data.categories) == "ffccccrrrr"
    mnist = DETECTION_DATASETS.get("mnist_lt_seg")().read(None, 0)
    assert torch.equal(data.test.image(2)[0], mnist.test.image(2)[0]) and data.test.image(2).shape[0] == 3
    assert isinstance(data.test, DetectionSplit)


def test_data_check_summarises_a_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_lvis_tree(tmp_path, version="v0.5")
    assert main(["data", "check", "lvis_v0.5", "--data-root", str(tmp_path)]) in (0, None)
    out = capsys.readouterr().out
    assert "lvis_v0.5: 10 categories" in out and "rare 4, common 4, frequent 2" in out
    assert "test          6 images" in out


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Traceback" not in error
    return error


def test_without_the_files_one_line_names_them_and_where_to_get_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error = _one_line_error(["data", "check", "lvis_v1", "--data-root", str(tmp_path)], capsys)
    assert (
        "lvis_v1_train.json" in error and "https://dl.fbaipublicfiles.com/LVIS/lvis_v1_val.json.zip" in error
    )
    assert "http://images.cocodataset.org/zips/train2017.zip" in error


def test_a_missing_image_fails_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_lvis_tree(tmp_path)
    victim = sorted((tmp_path / "val2017").iterdir())[3]
    victim.unlink()
    error = _one_line_error(["data", "check", "lvis_v1", "--data-root", str(tmp_path)], capsys)
    assert f"first {victim}" in error and "1 images listed in" in error


def test_an_unknown_category_id_fails_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_lvis_tree(tmp_path)
    path = tmp_path / "lvis_v1_val.json"
    ground_truth = json.loads(path.read_text())
    ground_truth["annotations"][4]["category_id"] = 99
    path.write_text(json.dumps(ground_truth))
    error = _one_line_error(["data", "check", "lvis_v1", "--data-root", str(tmp_path)], capsys)
    assert f"annotation {ground_truth['annotations'][4]['id']} has unknown category id 99" in error
