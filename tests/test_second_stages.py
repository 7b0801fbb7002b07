"""Second stages train on their own schedules: the method's official epochs, lr (scaled to the run's
batch), weight decay and schedule, whatever the first stage's; `--second-stage-*` replace them and name
the run; the record and `lt-bench recipe` show both stages."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from lt_bench.checkpoint import read_checkpoint
from lt_bench.cli import main
from lt_bench.config import resolve_config
from lt_bench.records import read_record, record_path
from lt_bench.runner import RunPaths
from lt_bench.stages import Stage, run_stages

# digits_lt's recipe trains at batch 64; at batch 32 weight balancing's stage 2 (lr 0.01 at batch 64,
# demo2) runs at 0.005 and stage 1 at the recipe's 0.05 · 32/64 = 0.025.
RUN = ["--dataset", "digits_lt", "--epochs", "2", "--batch-size", "32", "--threads", "1"]
STAGE_ONE = {
    "method": "ce_weight_decay",
    "epochs": 2,
    "batch_size": 32,
    "lr": 0.025,
    "weight_decay": 5e-3,
    "schedule": "cosine",
    "warmup_epochs": 0,
}
STAGE_TWO = {
    "method": "weight_balancing",
    "epochs": 10,
    "batch_size": 32,
    "lr": 0.005,
    "weight_decay": 0.1,
    "schedule": "cosine",
    "warmup_epochs": 0,
}


def _config(method: str, output: Path, **overrides):
    return resolve_config(
        method, "digits_lt", epochs=2, batch_size=32, threads=1, output=str(output), **overrides
    )


def _logged_rates(config) -> list[float]:
    lines = RunPaths.of(config).log.read_text().splitlines()
    return [json.loads(line)["lr"] for line in lines if "lr" in json.loads(line)]


def _weight_decay(config) -> float:
    (group,) = read_checkpoint(RunPaths.of(config).checkpoint)["optimizer"]["param_groups"]
    return group["weight_decay"]


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """Weight balancing as declared, then with every second-stage value overridden (stage 1 reused)."""
    output = tmp_path_factory.mktemp("stages")
    assert main(["run", "--method", "weight_balancing", *RUN, "--output", str(output)]) == 0
    overrides = [
        "--second-stage-epochs",
        "3",
        "--second-stage-lr",
        "0.02",
        "--second-stage-weight-decay",
        "0.01",
    ]
    assert main(["run", "--method", "weight_balancing", *RUN, *overrides, "--output", str(output)]) == 0
    return output


def test_weight_balancing_stage_two_runs_the_official_schedule_under_the_shared_protocol(output):
    config = _config("weight_balancing", output)
    record = read_record(record_path(output, config.run_id))
    assert record["config"]["protocol"] == "shared"
    assert record["stages"] == [STAGE_ONE, STAGE_TWO]
    # cosine from 0.005 to 0 over 10 epochs, though stage 1 trained 2
    assert _logged_rates(config) == pytest.approx(
        [0.005 * (1 + math.cos(math.pi * e / 10)) / 2 for e in range(10)]
    )
    assert _weight_decay(config) == 0.1
    first = _config("ce_weight_decay", output)
    assert record["first_stage"] == {"run_id": first.run_id, "reused": False}
    assert _weight_decay(first) == 5e-3
    assert read_record(record_path(output, first.run_id))["stages"] == [STAGE_ONE]


def test_second_stage_overrides_train_and_name_the_run(output):
    declared = _config("weight_balancing", output)
    config = _config(
        "weight_balancing",
        output,
        second_stage_epochs=3,
        second_stage_lr=0.02,
        second_stage_weight_decay=0.01,
    )
    assert config.run_id != declared.run_id
    record = read_record(record_path(output, config.run_id))
    assert record["first_stage"]["reused"] is True  # the same stage 1: the overrides are stage 2's
    assert record["stages"] == [STAGE_ONE, {**STAGE_TWO, "epochs": 3, "lr": 0.02, "weight_decay": 0.01}]
    assert _logged_rates(config) == pytest.approx([0.02, 0.015, 0.005])  # 0.02·(1 + cos(πe/3))/2
    assert _weight_decay(config) == 0.01


def test_epochs_scale_the_first_stage_only_in_every_protocol():
    for epochs in (1, 30, 400):
        stages = run_stages(resolve_config("weight_balancing", "mnist_lt", epochs=epochs))
        assert [stage.epochs for stage in stages] == [epochs, 10]
    paper = run_stages(resolve_config("crt", "imagenet_lt", protocol="paper", epochs=9))
    assert paper == [
        Stage("ce", 9, 512, 0.2, 5e-4, "cosine"),
        Stage("crt", 10, 512, 0.2, 5e-4, "cosine"),  # config/ImageNet_LT/cls_crt.yaml
    ]
    inat = run_stages(resolve_config("crt", "inat2018", protocol="paper", epochs=9))[1]
    assert (inat.epochs, inat.weight_decay) == (30, 1e-4)  # config/iNaturalist18/cls_crt.yaml


def test_decoupling_stages_scale_their_lr_from_batch_512():
    crt, lws, tau_norm = (run_stages(resolve_config(m, "mnist_lt"))[1] for m in ("crt", "lws", "tau_norm"))
    assert (crt.epochs, crt.lr, crt.weight_decay) == (10, pytest.approx(0.2 * 32 / 512), 5e-4)
    assert (lws.epochs, lws.lr, lws.weight_decay) == (5, pytest.approx(0.2 * 32 / 512), 5e-4)
    assert tau_norm == Stage("tau_norm", 0, 32, None, None, None)  # post-hoc: trains nothing


def test_run_ids_without_second_stage_overrides_are_those_of_the_committed_records():
    # results/records/mnist_lt-weight_balancing-lt_small_cnn-seed0-9fa390ee96.json, made before the options
    config = resolve_config("weight_balancing", "mnist_lt", seed=0, threads=1)
    assert "second_stage_epochs" not in config.identity()
    assert config.run_id == "mnist_lt-weight_balancing-lt_small_cnn-seed0-9fa390ee96"


def test_recipe_prints_both_stages(capsys):
    assert (
        main(["recipe", "--method", "weight_balancing", "--dataset", "digits_lt", "--batch-size", "32"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [
        "stage 1  ce_weight_decay: 8 epochs, batch 32, lr 0.025, weight decay 0.005, cosine",
        "stage 2  weight_balancing: 10 epochs, batch 32, lr 0.005, weight decay 0.1, cosine",
    ]
    assert main(["recipe", "--method", "tau_norm", "--dataset", "digits_lt"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "stage 2  tau_norm: trains nothing (post-hoc)"


@pytest.mark.parametrize(
    ("method", "flag", "message"),
    [
        ("ce", "--second-stage-epochs=3", "method 'ce' has one stage; drop --second-stage-epochs"),
        ("tau_norm", "--second-stage-lr=0.1", "method 'tau_norm' trains nothing after its first stage"),
        ("crt", "--second-stage-lr=-1", "--second-stage-lr must be a positive number, got -1.0"),
        ("crt", "--second-stage-epochs=0", "--second-stage-epochs must be at least 1, got 0"),
    ],
)
def test_impossible_second_stage_values_are_one_line_errors(method, flag, message, capsys):
    assert main(["recipe", "--method", method, "--dataset", "digits_lt", flag]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1
