"""Options a dataset does not use: a warning when harmless, a one-line error when they would mislead."""

from __future__ import annotations

from pathlib import Path

import pytest

from lt_bench.cli import main
from lt_bench.data import DATASETS, DataOptions
from lt_bench.errors import UserError


@pytest.mark.parametrize("name", ["imagenet_lt", "places_lt", "inat2018"])
def test_an_imbalance_ratio_for_a_dataset_fixed_by_lists_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=f"--imbalance-ratio does not apply to {name}: its split lists fix the long tail"
    ):
        DATASETS.get(name)().load(DataOptions(data_root=tmp_path, imbalance_ratio=10))


def test_a_run_with_an_imbalance_ratio_on_imagenet_lt_is_one_line(tmp_path: Path, capsys) -> None:
    argv = ["run", "--method", "ce", "--dataset", "imagenet_lt", "--imbalance-ratio", "50"]
    assert main([*argv, "--data-root", str(tmp_path), "--output", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == (
        "lt-bench: error: --imbalance-ratio does not apply to imagenet_lt: its split lists fix the long "
        "tail; drop the option\n"
    )


@pytest.mark.parametrize("name", ["digits_lt", "mnist_lt"])
def test_a_data_root_for_a_packaged_dataset_is_ignored_with_a_warning(name: str, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match=f"--data-root is ignored: {name} ships inside installed packages"):
        data = DATASETS.get(name)().load(DataOptions(data_root=tmp_path / "nowhere"))
    assert data.num_classes == 10


def test_the_cli_prints_the_warning_as_one_line(tmp_path: Path, capsys) -> None:
    assert main(["data", "check", "digits_lt", "--data-root", str(tmp_path), "--custom-lists"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("lt-bench: ")]
    assert warnings == [
        "lt-bench: warning: --data-root is ignored: digits_lt ships inside installed packages",
        "lt-bench: warning: --custom-lists is ignored: digits_lt has no split lists",
    ]
