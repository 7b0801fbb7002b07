"""Bad input through the real CLI: exit status 2 and one stderr line that names the fix, no traceback."""

from __future__ import annotations

import json

import pytest
import torch

from lt_bench.cli import main
from lt_bench.config import resolve_config
from lt_bench.runner import RunPaths

DIGITS = ["run", "--dataset", "digits_lt", "--epochs", "1", "--batch-size", "64"]

CASES = {
    "unknown method": (["run", "--method", "causal_tdee", "--dataset", "digits_lt"],
                       "unknown method 'causal_tdee'. Did you mean 'causal_tde'"),
    "unknown dataset": (["run", "--method", "ce", "--dataset", "digit_lt"],
                        "unknown dataset 'digit_lt'. Did you mean 'digits_lt'"),
    "unknown backbone": ([*DIGITS, "--method", "ce", "--backbone", "resnet_18"],
                         "unknown backbone 'resnet_18'. Did you mean 'resnet18'"),
    "negative epochs": ([*DIGITS, "--method", "ce", "--epochs", "-3"], "--epochs must be at least 1"),
    "epochs not a number": ([*DIGITS, "--method", "ce", "--epochs", "two"],
                            "argument --epochs: invalid int value: 'two'"),
    "imbalance ratio below 1": ([*DIGITS, "--method", "ce", "--imbalance-ratio", "0.5"],
                                "--imbalance-ratio must be a number >= 1"),
    "alpha not a number": ([*DIGITS, "--method", "causal_tde", "--knob", "alpha=abc"],
                           "expected NAME=NUMBER (e.g. alpha=2.0), got 'alpha=abc'"),
    "alpha not finite": ([*DIGITS, "--method", "causal_tde", "--knob", "alpha=nan"],
                         "--knob alpha must be a finite number"),
    "knob the method lacks": ([*DIGITS, "--method", "causal_tde", "--knob", "beta=1"],
                              "method 'causal_tde' has no test-time knob 'beta' (its knobs: alpha)"),
    "batch larger than the dataset": ([*DIGITS, "--method", "ce", "--batch-size", "100000"],
                                      "pass a smaller --batch-size"),
    "negative lr decay": ([*DIGITS, "--method", "ce", "--lr-decay", "-1"],
                          "--lr-decay must be a positive number"),
    "seed out of range": ([*DIGITS, "--method", "ce", "--seed", str(2**64)],
                          "--seed and --data-seed must be in [0, 2**63)"),
    "unknown device": ([*DIGITS, "--method", "ce", "--device", "tpu7"],
                       "--device must be auto, cpu, cuda or cuda:N (a GPU's index), got 'tpu7'"),
    "data root missing": (["run", "--method", "ce", "--dataset", "imagenet_lt", "--data-root",
                           "/nonexistent/imagenet"], "ImageNet_LT_train.txt is missing"),
    "zero training images for a log prior": (
        [*DIGITS, "--method", "logit_adjustment", "--imbalance-ratio", "1e9"],
        "have no training images (log prior -inf): lower --imbalance-ratio"),
    "unknown option": ([*DIGITS, "--method", "ce", "--epoch", "1", "--bogus"],
                       "unrecognized arguments: --bogus"),
    "backbone that cannot take the image size": (
        [*DIGITS, "--method", "ce", "--backbone", "vit_tiny_patch16_224"],
        "backbone 'vit_tiny_patch16_224' cannot take digits_lt's (1, 8, 8) images"),
    "negative workers": ([*DIGITS, "--method", "ce", "--num-workers", "-1"],
                         "--num-workers must be >= 0, got -1"),
    "zero threads": ([*DIGITS, "--method", "ce", "--threads", "0"], "--threads must be at least 1, got 0"),
    "unsorted milestones": ([*DIGITS, "--method", "ce", "--epochs", "9", "--schedule", "multistep",
                             "--milestones", "6", "3"],
                            "--milestones must be sorted epochs below --epochs 9, got 6 3; pass"),
    "milestone past the last epoch": ([*DIGITS, "--method", "ce", "--epochs", "4", "--schedule", "multistep",
                                       "--milestones", "2", "4"],
                                      "--milestones must be sorted epochs below --epochs 4, got 2 4"),
    "a knob given twice": ([*DIGITS, "--method", "causal_tde", "--knob", "alpha=1", "--knob", "alpha=2"],
                           "--knob alpha is given 2 times; pass each knob once"),
    "alpha below its range": ([*DIGITS, "--method", "causal_tde", "--knob", "alpha=-1"],
                              "--knob alpha must be >= 0 for method 'causal_tde', got -1"),
    "tau below its range": ([*DIGITS, "--method", "tau_norm", "--knob", "tau=-0.5"],
                            "--knob tau must be >= 0 for method 'tau_norm', got -0.5"),
    "posthoc tau below its range": ([*DIGITS, "--method", "logit_adjustment_posthoc", "--knob", "tau=-2"],
                                    "--knob tau must be >= 0 for method 'logit_adjustment_posthoc', got -2"),
}  # fmt: skip
if torch.cuda.is_available():
    del CASES["unknown device"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("lt-bench: error: ")]
    assert len(errors) == 1, err
    return errors[0]


@pytest.mark.parametrize("argv, fix", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_naming_the_fix(argv, fix, tmp_path, capsys):
    assert main([*argv, "--output", str(tmp_path)]) == 2
    assert fix in _one_error_line(capsys)
    assert not list(tmp_path.rglob("*.json"))  # nothing was trained or recorded


def test_an_empty_output_is_refused(capsys):
    assert main([*DIGITS, "--method", "ce", "--output", ""]) == 2
    assert "--output must name a results folder, got ''" in _one_error_line(capsys)


def test_a_records_path_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "records").write_text("not a folder")
    assert main([*DIGITS, "--method", "ce", "--output", str(tmp_path)]) == 2
    line = _one_error_line(capsys)
    assert f"{tmp_path / 'records'} is a file, not a folder; move it away or pass a writable --output" in line
    assert not (tmp_path / "runs").exists()  # nothing trained


def test_the_lr_scaling_note_comes_only_for_a_configuration_that_runs(tmp_path, capsys):
    assert (
        main([*DIGITS, "--method", "ce", "--batch-size", "32", "--momentum", "2", "--output", str(tmp_path)])
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("lt-bench: error: --momentum must be in [0, 1)") and len(err.splitlines()) == 1


def test_a_split_list_with_a_bad_line_is_named_by_file_and_line(tmp_path, capsys):
    for split in ("train", "val", "test"):
        (tmp_path / f"ImageNet_LT_{split}.txt").write_text("train/n01/a.JPEG 0\ntrain/n01/b.JPEG zero\n")
    argv = ["run", "--method", "ce", "--dataset", "imagenet_lt", "--data-root", str(tmp_path)]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 2
    assert "ImageNet_LT_train.txt:2" in _one_error_line(capsys)


def test_an_output_that_is_a_file_is_refused(tmp_path, capsys):
    output = tmp_path / "results"
    output.write_text("not a folder")
    assert main([*DIGITS, "--method", "ce", "--output", str(output)]) == 2
    assert "pass a writable --output" in _one_error_line(capsys)


def test_resuming_into_a_folder_of_another_configuration_is_refused(tmp_path, capsys):
    config = resolve_config("ce", "digits_lt", epochs=1, batch_size=64, output=str(tmp_path))
    folder = RunPaths.of(config).folder
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**config.identity(), "epochs": 5}))
    assert main([*DIGITS, "--method", "ce", "--output", str(tmp_path)]) == 2
    line = _one_error_line(capsys)
    assert f"{folder} holds a run of a different configuration; delete that folder" in line
    assert not (folder / "checkpoint.pt").exists()
