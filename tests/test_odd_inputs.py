"""Odd inputs to `run` and `data check`: files that are no weights, malformed launcher environment
variables, list files with odd text. Each is one line naming the file or variable and the fix,
exit status 2, and nothing written."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import torch
from test_bad_input import DIGITS, _one_error_line

from lt_bench.cli import main

CE_ON_DIGITS = [*DIGITS, "--method", "ce"]


def _nothing_written(output: Path) -> bool:
    return not (output / "runs").exists() and not (output / "records").exists()


def _write_text(path: Path) -> Path:
    path.write_text("these are not weights\n")
    return path


def _write_pickled_list(path: Path) -> Path:
    path.write_bytes(pickle.dumps([1, 2, 3]))
    return path


def _write_saved_list(path: Path) -> Path:
    torch.save([torch.zeros(2), 3], path)
    return path


NOT_WEIGHTS = r"cannot read weights file {path}: .*; pass as --pretrained-file a state dict"
WEIGHTS_CASES = {
    "text file": (_write_text, NOT_WEIGHTS),
    "/dev/zero": (
        lambda _: Path("/dev/zero"),
        r"/dev/zero: a character device, not a regular file; pass as --pretrained-file a state dict",
    ),
    "pickled list": (_write_pickled_list, NOT_WEIGHTS),
    "torch-saved list": (
        _write_saved_list,
        r"weights file {path} holds no state dict of tensors .*; pass as",
    ),
}


@pytest.mark.parametrize(("make", "complaint"), WEIGHTS_CASES.values(), ids=WEIGHTS_CASES.keys())
def test_a_pretrained_file_that_holds_no_weights_is_one_line(tmp_path, capsys, make, complaint):
    path = make(tmp_path / "weights.pth")
    output = tmp_path / "out"
    assert main([*CE_ON_DIGITS, "--pretrained-file", str(path), "--output", str(output)]) == 2
    line = _one_error_line(capsys)
    assert re.search(complaint.format(path=re.escape(str(path))), line)
    assert _nothing_written(output)  # refused before the run starts: no folder, no record


@pytest.mark.parametrize(
    ("variables", "complaint"),
    [
        (
            {"WORLD_SIZE": "2"},
            "WORLD_SIZE=2 asks for 2 processes but RANK is not set; launch through torchrun",
        ),
        ({"WORLD_SIZE": "two"}, "environment variable WORLD_SIZE='two' is not a whole number >= 1; launch"),
        ({"LOCAL_WORLD_SIZE": "0"}, "environment variable LOCAL_WORLD_SIZE='0' is not a whole number >= 1"),
        (
            {"SLURM_CPUS_PER_TASK": "abc"},
            "environment variable SLURM_CPUS_PER_TASK='abc' is not a whole number",
        ),
        ({"SLURM_CPUS_PER_TASK": "٣"}, "environment variable SLURM_CPUS_PER_TASK='٣' is not a whole number"),
        (
            {"WORLD_SIZE": "2", "RANK": "5", "MASTER_ADDR": "localhost", "MASTER_PORT": "29500"},
            "environment variable RANK=5 is not below WORLD_SIZE=2",
        ),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "localhost", "MASTER_PORT": "-1"},
            "environment variable MASTER_PORT='-1' is not a whole number >= 1",
        ),
    ],
    ids=lambda value: ",".join(value) if isinstance(value, dict) else "",
)
def test_a_malformed_launcher_variable_is_one_line_naming_it(
    tmp_path, capsys, monkeypatch, variables, complaint
):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    output = tmp_path / "out"
    assert main([*CE_ON_DIGITS, "--output", str(output)]) == 2
    line = _one_error_line(capsys)
    assert complaint in line and "or unset" in line
    assert _nothing_written(output)


@pytest.fixture
def lists(tmp_path: Path) -> Path:
    """ImageNet-LT list files of two lines each under `tmp_path` (no images: the lists fail first)."""
    for split in ("train", "val", "test"):
        (tmp_path / f"ImageNet_LT_{split}.txt").write_text(f"{split}/n01/a.JPEG 0\n{split}/n01/b.JPEG 1\n")
    return tmp_path


@pytest.mark.parametrize("command", ["data check", "run"])
@pytest.mark.parametrize(
    ("second_line", "complaint"),
    [
        (
            "train/n01/b.JPEG ٣\n".encode(),
            "ImageNet_LT_train.txt:2: label '٣' is not written in the digits 0-9; write it in ASCII digits",
        ),  # fmt: skip
        (
            "train/n01/b.JPEG ³\n".encode(),
            "ImageNet_LT_train.txt:2: label '³' is not written in the digits 0-9",
        ),
        (
            b"train/n01/b\xe9.JPEG 1\n",
            "ImageNet_LT_train.txt:2: not UTF-8 text (byte 0xe9); a list is UTF-8 text",
        ),
    ],
    ids=["arabic-indic digit", "superscript digit", "latin-1 byte"],
)
def test_a_list_file_with_odd_text_is_named_by_file_and_line(lists, capsys, command, second_line, complaint):
    train = lists / "ImageNet_LT_train.txt"
    train.write_bytes(b"train/n01/a.JPEG 0\n" + second_line)
    before = {path.name: path.read_bytes() for path in lists.iterdir()}
    argv = (
        ["data", "check", "imagenet_lt", "--data-root", str(lists), "--custom-lists"]
        if command == "data check"
        else [
            "run",
            "--method",
            "ce",
            "--dataset",
            "imagenet_lt",
            "--data-root",
            str(lists),
            "--custom-lists",
            "--output",
            str(lists / "out"),
        ]  # fmt: skip
    )
    assert main(argv) == 2
    assert complaint in _one_error_line(capsys)
    assert {path.name: path.read_bytes() for path in lists.iterdir()} == before  # no results folder either
