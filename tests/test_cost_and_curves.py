"""Every record's cost block and training curve, from real tiny runs on digits_lt; validation passes
change nothing the run computes; TensorBoard event files hold the curve."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lt_bench.backbones import LongTailClassifier
from lt_bench.cli import main
from lt_bench.config import resolve_config
from lt_bench.cost import model_footprint
from lt_bench.leaderboard import leaderboard_markdown
from lt_bench.methods.decoupling import CRT_STAGE
from lt_bench.records import iter_records
from lt_bench.runner import RunPaths, load_data

EPOCHS = 4
BATCH = 32


def _records(output: Path) -> dict[str, dict]:
    return {record["method"]: record for record in iter_records(output)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """ce for four epochs, then cRT reusing it; a second tree runs ce validating every epoch."""
    output = tmp_path_factory.mktemp("cost")
    common = ["--dataset", "digits_lt", "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--output"]
    assert main(["run", "--method", "ce", *common, str(output), "--val-every", "3"]) == 0
    assert main(["run", "--method", "crt", *common, str(output)]) == 0
    return output


def test_footprint_counts_parameters_and_two_flops_per_multiply_add():
    data = load_data(resolve_config("ce", "digits_lt", output="unused"))
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(64, 16))
    model = LongTailClassifier(backbone, nn.Linear(16, 10))
    model.head.weight.requires_grad_(False)
    model.train()
    state = torch.random.get_rng_state()
    footprint = model_footprint(model, data.val, torch.device("cpu"))
    assert footprint == {
        "trainable_parameters": 64 * 16 + 16 + 10,
        "total_parameters": 64 * 16 + 16 + 16 * 10 + 10,
        "flops_per_image": 2 * 64 * 16 + 2 * 16 * 10,
    }
    assert model.training and all(module.training for module in model.modules())
    assert torch.equal(torch.random.get_rng_state(), state)


def test_cost_block_of_a_run_and_of_a_second_stage(runs):
    records = _records(runs)
    ce, crt = records["ce"]["cost"], records["crt"]["cost"]
    train_images = sum(records["ce"]["class_counts"])
    per_epoch = train_images // BATCH * BATCH
    assert ce["images_seen"] == EPOCHS * per_epoch
    assert ce["trainable_parameters"] == ce["total_parameters"] > 0
    assert ce["flops_per_image"] > 2 * ce["total_parameters"] / 10  # convolutions reuse their weights
    assert (ce["devices"], ce["wall_time_s"]) == (1, records["ce"]["wall_time_s"])
    assert ce["device_hours"] == pytest.approx(ce["wall_time_s"] / 3600, abs=1e-6)
    assert ce["device"] and isinstance(ce["device"], str)
    # cRT: a new linear classifier is all it trains; its 1 epoch (10/90 of 4, at least 1) adds to ce's.
    assert records["crt"]["first_stage"]["reused"] is True
    assert crt["total_parameters"] == ce["total_parameters"]
    assert crt["trainable_parameters"] < ce["trainable_parameters"] / 5
    assert crt["flops_per_image"] == ce["flops_per_image"]
    assert crt["images_seen"] == (EPOCHS + CRT_STAGE.epochs) * per_epoch  # stage 2 on its own schedule
    assert crt["wall_time_s"] == pytest.approx(records["crt"]["wall_time_s"] + ce["wall_time_s"], abs=2e-3)
    assert crt["device_hours"] == pytest.approx(crt["wall_time_s"] / 3600, abs=2e-6)


def test_the_curve_is_the_log_with_validation_every_n_epochs(runs):
    ce = _records(runs)["ce"]
    log = RunPaths.of(
        resolve_config("ce", "digits_lt", epochs=EPOCHS, batch_size=BATCH, output=str(runs))
    ).log
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["epoch"] for entry in ce["curve"]] == [1, 2, 3, 4]
    for point, entry in zip(ce["curve"], entries, strict=True):
        assert point == {
            k: entry[k] for k in ("epoch", "loss", "train_top1", "val_balanced_accuracy") if k in entry
        }
    # every 3rd epoch and the last
    assert [p["epoch"] for p in ce["curve"] if "val_balanced_accuracy" in p] == [3, 4]
    # the last epoch's validation is the one the record's val metrics measure (no knobs for ce)
    assert ce["curve"][-1]["val_balanced_accuracy"] == ce["metrics"]["val"]["balanced_accuracy"]
    assert [p["epoch"] for p in _records(runs)["crt"]["curve"]] == list(range(1, CRT_STAGE.epochs + 1))


def test_validation_passes_change_nothing_the_run_computes(runs, tmp_path):
    assert main(["run", "--method", "ce", "--dataset", "digits_lt", "--epochs", str(EPOCHS), "--batch-size",
                 str(BATCH), "--val-every", "0", "--output", str(tmp_path)]) == 0  # fmt: skip
    quiet, validated = _records(tmp_path)["ce"], _records(runs)["ce"]
    assert quiet["run_id"] == validated["run_id"]
    assert quiet["test_predictions"] == validated["test_predictions"]
    assert quiet["metrics"] == validated["metrics"]
    assert [{k: p[k] for k in ("loss", "train_top1")} for p in quiet["curve"]] == [
        {k: p[k] for k in ("loss", "train_top1")} for p in validated["curve"]
    ]
    assert not any("val_balanced_accuracy" in p for p in quiet["curve"])


def test_leaderboard_cost_columns(runs):
    page = leaderboard_markdown(iter_records(runs), costs=("params", "flops", "images", "hours"))
    header = next(line for line in page.splitlines() if line.startswith("| Method"))
    assert [c.strip() for c in header.strip("|").split("|")][-5:] == [
        "Params", "FLOPs/image", "Images seen", "Device-hours", "Seeds",
    ]  # fmt: skip
    ce = _records(runs)["ce"]["cost"]
    row = next(line for line in page.splitlines() if line.startswith("| ce "))
    assert f"{ce['total_parameters'] / 1000:.3g}k" in row
    assert "Device-hours: wall time" in page


def test_tensorboard_event_files_hold_the_curve(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main(["run", "--method", "ce", "--dataset", "digits_lt", "--epochs", "2", "--tensorboard",
                 "--output", str(tmp_path)]) == 0  # fmt: skip
    (folder,) = (tmp_path / "runs").glob("*/tensorboard")
    events = EventAccumulator(str(folder))
    events.Reload()
    record = next(iter(iter_records(tmp_path)))
    losses = [event.value for event in events.Scalars("loss")]
    assert losses == pytest.approx([point["loss"] for point in record["curve"]])
    assert [event.step for event in events.Scalars("val_balanced_accuracy")] == [1, 2]


def test_tensorboard_missing_is_one_line_and_leaves_no_run_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails
    code = main(["run", "--method", "ce", "--dataset", "digits_lt", "--epochs", "1", "--tensorboard",
                 "--output", str(tmp_path)])  # fmt: skip
    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("lt-bench: error: --tensorboard needs the tensorboard package: pip install")
    assert not (tmp_path / "runs").exists()


def test_a_negative_val_every_is_one_line(tmp_path, capsys):
    assert main(["run", "--method", "ce", "--dataset", "digits_lt", "--val-every", "-1", "--output",
                 str(tmp_path)]) == 2  # fmt: skip
    (line,) = capsys.readouterr().err.splitlines()
    assert line == "lt-bench: error: --val-every must be a whole number of epochs >= 0, got -1"


def test_a_knob_reevaluation_carries_the_cost_and_curve_of_the_run_it_evaluates(runs):
    common = [
        "--dataset",
        "digits_lt",
        "--epochs",
        str(EPOCHS),
        "--batch-size",
        str(BATCH),
        "--output",
        str(runs),
    ]
    assert main(["run", "--method", "causal_tde", *common]) == 0
    assert main(["run", "--method", "causal_tde", "--knob", "alpha=1.0", *common]) == 0
    tde = [r for r in iter_records(runs) if r["method"] == "causal_tde"]
    free, fixed = (next(r for r in tde if bool(r["config"]["knobs"]) is k) for k in (False, True))
    assert fixed["evaluated_from"] == free["run_id"]
    assert fixed["curve"] == free["curve"] and len(free["curve"]) == EPOCHS
    assert (
        fixed["cost"]["images_seen"]
        == free["cost"]["images_seen"]
        == _records(runs)["ce"]["cost"]["images_seen"]
    )
    hours = free["cost"]["device_hours"] + fixed["wall_time_s"] / 3600
    assert fixed["cost"]["device_hours"] == pytest.approx(hours, abs=2e-6)
