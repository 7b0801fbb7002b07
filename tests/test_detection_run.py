"""A detection run end to end on a small LVIS-format tree: record with AP by frequency, exact resume,
leaderboard section, one-line errors."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from lt_bench.cli import main
from lt_bench.detection.data import DETECTION_DATASETS
from lt_bench.detection.lvis_tree import write_lvis_tree
from lt_bench.detection.run import DetectionRunConfig, run_detection
from lt_bench.leaderboard import leaderboard_markdown
from lt_bench.records import iter_records
from tests.test_detection_engine import RECIPE_DETECTOR

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lvis")
    write_lvis_tree(DETECTION_DATASETS.get("mnist_lt_seg")().read(None, 0), root, "v1", images_per_split=5)
    return root


def _config(tree: Path, output: Path, epochs: int) -> DetectionRunConfig:
    return DetectionRunConfig(
        method="causal_tde",
        dataset="lvis_v1",
        detector=RECIPE_DETECTOR,
        epochs=epochs,
        batch_size=2,
        lr=0.01,
        warmup_steps=2,
        data_root=str(tree),
        output=str(output),
        knobs={"alpha": 1.5},
    )


def test_a_killed_run_resumes_to_the_same_record(tree: Path, tmp_path: Path) -> None:
    whole = run_detection(_config(tree, tmp_path / "whole", epochs=2))
    assert set(whole["metrics"]["test"]) >= {"AP", "APr", "APc", "APf", "box_AP"}
    assert whole["task"] == "instance_segmentation" and whole["knobs"]["selected"] == {"alpha": 1.5}
    # The run killed after its first epoch: the checkpoint that epoch wrote, and nothing after it.
    first = _config(tree, tmp_path / "killed", epochs=1)
    run_detection(first)
    resumed = _config(tree, tmp_path / "killed", epochs=2)
    folder = tmp_path / "killed" / "runs"
    (folder / resumed.run_id).mkdir(parents=True)
    shutil.copy(folder / first.run_id / "checkpoint.pt", folder / resumed.run_id / "checkpoint.pt")
    again = run_detection(resumed)
    assert again["metrics"] == whole["metrics"] and again["curve"] == whole["curve"]
    markdown = leaderboard_markdown(list(iter_records(tmp_path / "whole")))
    assert "# Long-tailed instance segmentation" in markdown and "## lvis_v1" in markdown
    assert "| causal_tde " in markdown and "APr" in markdown


def test_alpha_is_chosen_on_validation_ap(tree: Path, tmp_path: Path) -> None:
    config = replace(_config(tree, tmp_path, epochs=1), knobs={})
    record = run_detection(config)
    candidates = record["knobs"]["validation"]
    assert [row["alpha"] for row in candidates] == [step * 0.25 for step in range(13)]
    best = max(row["val_AP"] for row in candidates)
    chosen = next(row for row in candidates if row["val_AP"] == best)
    assert record["knobs"]["selected"] == {"alpha": chosen["alpha"]}


def test_lvis_without_its_files_a_classification_method_and_the_paper_protocol_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--method", "causal_tde", "--dataset", "lvis_v1", "--data-root", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "lvis_v1_train.json" in error and "images.cocodataset.org" in error
    assert main(["run", "--method", "focal", "--dataset", "mnist_lt_seg", "--output", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "focal has no instance segmentation hooks" in error and "causal_tde" in error
    assert main(["run", "--method", "ce", "--dataset", "mnist_lt_seg", "--protocol", "paper"]) == 2
    assert "drop --protocol paper" in capsys.readouterr().err
