"""Split-list entries are compared as the files they name: another spelling of a path (`./`, `..`,
repeated slashes) or a symlink to a training image is the training image."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_data_oltr import write_imagenet_lt

from lt_bench.cli import main

TRAINING_IMAGE = "train/n00000000/n00000000_0.JPEG"


def _append(root: Path, split: str, line: str) -> None:
    path = root / f"ImageNet_LT_{split}.txt"
    path.write_text(path.read_text() + f"{line}\n")


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error, error
    return error


@pytest.mark.parametrize(
    "spelling", [f"./{TRAINING_IMAGE}", "train/n00000000/../n00000000//n00000000_0.JPEG"]
)
def test_a_test_image_spelled_otherwise_than_in_training_is_refused_by_check_and_run(
    tmp_path, capsys, spelling
):
    write_imagenet_lt(tmp_path)
    _append(tmp_path, "test", f"{spelling} 0")
    check = ["data", "check", "imagenet_lt", "--data-root", str(tmp_path), "--custom-lists"]
    assert main(check) == 2
    error = _one_error(capsys)
    assert (
        f"ImageNet_LT_test.txt line 4 lists {spelling}, also a training image (ImageNet_LT_train.txt line 1)"
        in error
    )
    run = ["run", "--method", "ce", "--dataset", "imagenet_lt", "--data-root", str(tmp_path),
           "--custom-lists", "--output", str(tmp_path / "results")]  # fmt: skip
    assert main(run) == 2
    assert "also a training image (ImageNet_LT_train.txt line 1)" in _one_error(capsys)


def test_a_symlink_to_a_training_image_is_that_image(tmp_path, capsys):
    write_imagenet_lt(tmp_path)
    link = tmp_path / "val" / "n00000000" / "linked.JPEG"
    os.symlink(tmp_path / TRAINING_IMAGE, link)
    _append(tmp_path, "test", "val/n00000000/linked.JPEG 0")
    assert main(["data", "check", "imagenet_lt", "--data-root", str(tmp_path), "--custom-lists"]) == 2
    assert "lists val/n00000000/linked.JPEG, also a training image" in _one_error(capsys)


def test_one_training_image_listed_twice_under_two_spellings_is_refused(tmp_path, capsys):
    write_imagenet_lt(tmp_path)
    _append(tmp_path, "train", "train//n00000000/./n00000000_0.JPEG 0")
    assert main(["data", "check", "imagenet_lt", "--data-root", str(tmp_path), "--custom-lists"]) == 2
    error = _one_error(capsys)
    assert (
        "ImageNet_LT_train.txt line 10 lists train//n00000000/./n00000000_0.JPEG again (first at line 1)"
        in error
    )
