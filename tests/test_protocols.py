"""Protocols: the shared and paper recipes, epoch scaling, `lt-bench recipe`, best-validation epochs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lt_bench.checkpoint import read_checkpoint
from lt_bench.config import resolve_config
from lt_bench.errors import UserError
from lt_bench.method import METHODS, MethodContext
from lt_bench.methods.ldam import reweighting_epoch
from lt_bench.runner import run


def lt_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lt_bench.cli", *args], capture_output=True, text=True, timeout=300
    )


def _drw_context(epochs: int, milestones: tuple[int, ...]) -> MethodContext:
    return MethodContext("cifar10_lt", 10, (100,) * 10, 64, epochs, 10, 0.1, lr_milestones=milestones)


def test_fewer_epochs_move_the_milestones_and_the_drw_switch() -> None:
    full = resolve_config("ldam_drw", "cifar10_lt")
    half = resolve_config("ldam_drw", "cifar10_lt", epochs=100)
    assert (full.milestones, full.warmup_epochs) == ((160, 180), 5)
    assert (half.milestones, half.warmup_epochs) == ((80, 90), 2)
    assert reweighting_epoch(_drw_context(200, full.milestones)) == 160
    assert reweighting_epoch(_drw_context(100, half.milestones)) == 80
    more = resolve_config("ldam_drw", "cifar10_lt", epochs=400)
    assert more.milestones == (320, 360)


def test_milestones_given_on_the_command_line_are_not_moved() -> None:
    config = resolve_config("ldam_drw", "cifar10_lt", epochs=100, milestones=(50, 70), warmup_epochs=1)
    assert (config.milestones, config.warmup_epochs) == ((50, 70), 1)


def test_shared_is_the_default_protocol_and_the_dataset_recipe() -> None:
    config = resolve_config("causal_tde", "cifar10_lt")
    assert config.protocol == "shared"
    assert (config.backbone, config.batch_size, config.lr) == ("resnet32_cifar", 128, 0.1)


def test_a_method_without_a_paper_recipe_says_so_in_one_line() -> None:
    assert "digits_lt" not in METHODS.get("ce").paper_recipes
    with pytest.raises(UserError, match="no paper recipe for digits_lt.*--protocol shared"):
        resolve_config("ce", "digits_lt", protocol="paper")
    result = lt_bench("recipe", "--method", "ce", "--dataset", "digits_lt", "--protocol", "paper")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no paper recipe" in result.stderr


def test_best_val_needs_a_validation_split_apart_from_test() -> None:
    with pytest.raises(UserError, match="--select last"):
        resolve_config("ce", "inat2018", select="best-val")


def test_recipe_json_is_the_config_the_record_stores(tmp_path: Path) -> None:
    args = ["--method", "ce", "--dataset", "digits_lt", "--epochs", "2", "--batch-size", "32",
            "--output", str(tmp_path), "--num-workers", "0"]  # fmt: skip
    printed = lt_bench("recipe", *args, "--json")
    assert printed.returncode == 0, printed.stderr
    assert lt_bench("run", *args).returncode == 0
    (record_file,) = (tmp_path / "records").glob("*.json")
    assert json.loads(printed.stdout) == json.loads(record_file.read_text())["config"]


def test_best_val_keeps_the_best_validation_epoch(tmp_path: Path) -> None:
    config = resolve_config(
        "ce", "digits_lt", epochs=4, batch_size=32, select="best-val", output=str(tmp_path), num_workers=0
    )
    record = run(config)
    folder = tmp_path / "runs" / config.run_id
    best = read_checkpoint(folder / "best.pt")
    kept = record["kept_epoch"]
    assert kept["rule"] == "best-val" and 1 <= kept["epoch"] <= 4
    assert kept["epoch"] == best["epoch"]
    assert record["metrics"]["val"]["balanced_accuracy"] == pytest.approx(kept["val_balanced_accuracy"])
    last = run(config.replace(select="last", output=str(tmp_path / "last")))
    assert last["kept_epoch"] == {"rule": "last", "epoch": 4, "why": "the final epoch's weights"}
    if kept["epoch"] != 4:
        assert last["metrics"]["val"]["balanced_accuracy"] <= kept["val_balanced_accuracy"]
