"""An image that stops decoding in the middle of a run (a truncated JPEG on disk): one line naming the
file, a `failed` record, the last good checkpoint kept; after the file is replaced, the same command
finishes without training again what was already trained."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_data_oltr import write_imagenet_lt, write_jpeg

from lt_bench.checkpoint import read_checkpoint
from lt_bench.cli import main
from lt_bench.records import iter_records

FIX = "replace the file, or drop its entry from the list and pass --custom-lists"


@pytest.fixture
def tree(tmp_path) -> tuple[Path, dict[str, list[str]], list[str]]:
    root = tmp_path / "imagenet"
    lines = write_imagenet_lt(root)
    argv = ["run", "--method", "ce", "--dataset", "imagenet_lt", "--data-root", str(root), "--custom-lists",
            "--backbone", "lt_small_cnn", "--epochs", "1", "--batch-size", "3", "--num-workers", "0",
            "--threads", "1", "--checkpoint-every", "0", "--output", str(tmp_path / "results")]  # fmt: skip
    return root, lines, argv


def _truncate(path: Path) -> bytes:
    intact = path.read_bytes()
    path.write_bytes(intact[: len(intact) // 2])
    return intact


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.startswith("lt-bench: error: ")]
    return line


def _record(results: Path) -> dict:
    (path,) = (results / "records").glob("*.json")
    return json.loads(path.read_text())


def test_a_training_image_that_does_not_decode_fails_the_run_in_one_line(tree, tmp_path, capsys):
    root, lines, argv = tree
    image = root / lines["train"][7].split()[0]
    intact = _truncate(image)
    assert main(argv) == 2
    line = _error_line(capsys)
    (folder,) = (tmp_path / "results" / "runs").iterdir()
    match = re.fullmatch(
        rf"lt-bench: error: training epoch 1, step (\d): {re.escape(str(image))} \(ImageNet_LT_train\.txt "
        rf"line 8\) cannot be decoded: image file is truncated[^;]*; {re.escape(FIX)}; the last good "
        rf"checkpoint is kept in {re.escape(str(folder))}",
        line,
    )
    assert match, line
    step = int(match[1])
    assert step >= 2  # the steps before it trained and checkpointed
    assert read_checkpoint(folder / "checkpoint.pt")["progress"]["step"] == step - 1
    record = _record(tmp_path / "results")
    assert record["status"] == "failed" and str(image) in record["error"]
    assert list(iter_records(tmp_path / "results")) == []

    image.write_bytes(intact)
    assert main(argv) == 0  # resumes at that step
    assert _record(tmp_path / "results")["status"] == "finished"


def test_a_test_image_that_does_not_decode_fails_the_evaluation_and_keeps_the_trained_model(
    tree, tmp_path, capsys
):
    root, lines, argv = tree
    image = root / lines["test"][1].split()[0]
    _truncate(image)
    assert main(argv) == 2
    line = _error_line(capsys)
    (folder,) = (tmp_path / "results" / "runs").iterdir()
    assert line.startswith(f"lt-bench: error: evaluating: {image} (ImageNet_LT_test.txt line 2) cannot be ")
    assert line.endswith(f"; {FIX}; the trained model is kept in {folder}")
    assert _record(tmp_path / "results")["status"] == "failed"
    trained = (folder / "checkpoint.pt").stat().st_mtime_ns

    write_jpeg(image, shade=1)  # a good image again
    assert main(argv) == 0
    assert _record(tmp_path / "results")["status"] == "finished"
    assert (folder / "checkpoint.pt").stat().st_mtime_ns == trained  # evaluated, not trained again
    assert len((folder / "log.jsonl").read_text().splitlines()) == 1
