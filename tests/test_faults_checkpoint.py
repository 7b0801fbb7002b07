"""Torn, corrupted and missing checkpoints: detected by checksum, the previous one used with a warning."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from lt_bench.checkpoint import load_checkpoint, previous_path, read_checkpoint, save_checkpoint
from lt_bench.cli import main
from lt_bench.errors import UserError
from lt_bench.records import read_record

COMMAND = ["run", "--method", "causal_tde", "--dataset", "digits_lt", "--epochs", "2", "--batch-size", "16"]


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _foreign(path: Path) -> None:
    torch.save({"epoch": 99}, path)  # a plain torch file: loadable, but not written by lt-bench


DAMAGE = {"flipped byte": _flip_a_byte, "torn write": _truncate, "empty": _empty, "foreign": _foreign}
REASONS = {
    "flipped byte": "checksum mismatch",
    "torn write": "no checksum trailer",
    "empty": "no checksum trailer",
    "foreign": "no checksum trailer",
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(damage, tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1, "weight": torch.arange(1000.0)})
    save_checkpoint(path, {"step": 2, "weight": torch.arange(1000.0) * 2})
    assert load_checkpoint(path)["step"] == 2
    DAMAGE[damage](path)
    with pytest.warns(UserWarning, match=f"checkpoint.pt: {REASONS[damage]}.*resuming from .*previous"):
        state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["weight"], torch.arange(1000.0))
    with pytest.raises(ValueError, match=REASONS[damage]):
        read_checkpoint(path)


def test_a_newest_checkpoint_missing_mid_save_falls_back_to_the_previous_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1})
    save_checkpoint(path, {"step": 2})
    path.unlink()  # killed after the newest became .previous, before the new one was renamed in
    with pytest.warns(UserWarning, match="checkpoint.pt is missing"):
        assert load_checkpoint(path)["step"] == 1


def test_no_checkpoint_is_a_fresh_start_and_two_unreadable_ones_an_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_checkpoint(path) is None
    save_checkpoint(path, {"step": 1})
    save_checkpoint(path, {"step": 2})
    _flip_a_byte(path)
    _truncate(previous_path(path))
    with pytest.raises(UserError, match="no readable checkpoint .*delete that folder"):
        load_checkpoint(path)


def _result(output: Path) -> dict:
    (record,) = (output / "records").glob("*.json")
    values = read_record(record)
    return {key: values[key] for key in ("metrics", "per_class_accuracy", "knobs", "test_predictions")}


def test_a_run_with_a_corrupted_checkpoint_resumes_from_the_previous_one_to_the_same_record(tmp_path, capsys):
    assert main([*COMMAND, "--output", str(tmp_path / "reference")]) == 0
    damaged = tmp_path / "damaged"
    assert main([*COMMAND, "--output", str(damaged)]) == 0
    (folder,) = (damaged / "runs").iterdir()
    (damaged / "records").joinpath(f"{folder.name}.json").unlink()  # as if killed while evaluating
    assert read_checkpoint(previous_path(folder / "checkpoint.pt"))["progress"]["epoch"] == 1
    _flip_a_byte(folder / "checkpoint.pt")
    capsys.readouterr()
    assert main([*COMMAND, "--output", str(damaged)]) == 0
    err = capsys.readouterr().err
    assert "lt-bench: warning: checkpoint.pt: checksum mismatch" in err
    assert f"resuming from {folder / 'checkpoint.pt.previous'}" in err
    assert read_checkpoint(folder / "checkpoint.pt")["progress"]["epoch"] == 2  # epoch 2 retrained
    assert _result(damaged) == _result(tmp_path / "reference")


def test_a_run_whose_checkpoints_are_both_unreadable_says_how_to_start_fresh(tmp_path, capsys):
    assert main([*COMMAND, "--output", str(tmp_path)]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    (tmp_path / "records" / f"{folder.name}.json").unlink()
    _truncate(folder / "checkpoint.pt")
    _flip_a_byte(folder / "checkpoint.pt.previous")
    capsys.readouterr()
    assert main([*COMMAND, "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"\nlt-bench: error: no readable checkpoint in {folder} (" in err
    assert "(or pass --rerun) to start fresh" in err
    assert main([*COMMAND, "--output", str(tmp_path), "--rerun"]) == 0


def test_a_log_left_behind_its_checkpoint_is_rewritten_on_resume(tmp_path):
    assert main([*COMMAND, "--output", str(tmp_path)]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    log = folder / "log.jsonl"
    full = log.read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in full] == [1, 2]
    (tmp_path / "records" / f"{folder.name}.json").unlink()
    log.write_text(full[0] + "\n" + full[1][:10])  # killed after the last checkpoint, mid-log-write
    assert main([*COMMAND, "--output", str(tmp_path)]) == 0
    assert log.read_text().splitlines() == full
