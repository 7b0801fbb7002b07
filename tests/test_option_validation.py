"""Options that would silently change a result are refused in one line, or name the run: threads in
the run id, --device values, milestones a schedule or method would not use, recipe milestones that
collapse at few epochs, --custom-lists on a built-in dataset, --finetune linear for methods that
need images, a --peft-rank the backbone cannot take."""

from __future__ import annotations

import json

import pytest
from test_finetune import finetune_test_vit  # noqa: F401  registers the tiny ViT with timm

from lt_bench.cli import main
from lt_bench.config import resolve_config, stale_identity
from lt_bench.records import iter_records

DIGITS = ["run", "--dataset", "digits_lt", "--epochs", "1"]


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    error = capsys.readouterr().err
    lines = [line for line in error.splitlines() if line.startswith("lt-bench: error: ")]
    assert len(lines) == 1 and "Traceback" not in error, error
    return lines[0]


def test_threads_other_than_one_name_the_run_and_one_keeps_the_committed_ids():
    default = resolve_config("ce", "digits_lt", epochs=1)
    assert default.threads == 1
    assert resolve_config("ce", "digits_lt", epochs=1, threads=1).run_id == default.run_id
    assert resolve_config("ce", "digits_lt", epochs=1, threads=4).run_id != default.run_id
    committed = list(iter_records("results"))
    assert committed and all(stale_identity(record) is None for record in committed)


def test_a_record_made_with_other_threads_under_the_old_identity_is_named_and_not_reused(tmp_path, capsys):
    run = [*DIGITS, "--method", "ce", "--output", str(tmp_path)]
    assert main(run) == 0
    (path,) = (tmp_path / "records").glob("*.json")
    record = json.loads(path.read_text())
    record["config"]["threads"] = record["torch_threads"] = (
        4  # as --threads 4 wrote it before threads named runs
    )
    path.write_text(json.dumps(record))
    marker = tmp_path / "runs" / record["run_id"] / "made-with-4-threads"
    marker.touch()  # the run folder's checkpoints came from that run too
    capsys.readouterr()

    assert main(["leaderboard", "--output", str(tmp_path)]) == 0
    board = capsys.readouterr()
    expected = (
        f"record {record['run_id']} was made with --threads 4 under an older run identity (today's id: "
    )
    assert expected in board.err and "| ce " not in board.out

    assert main(run) == 0
    rerun = capsys.readouterr()
    assert f"{expected}" in rerun.err and "not reused: running it again" in rerun.err
    assert "already finished" not in rerun.out
    rewritten = json.loads(path.read_text())
    assert rewritten["config"]["threads"] == rewritten["torch_threads"] == 1
    assert stale_identity(rewritten) is None
    assert not marker.exists()  # trained from scratch, not resumed from the old checkpoints


@pytest.mark.parametrize("device", ["meta", "cuda:x", "cpu:0", "gpu", ""])
def test_device_values_other_than_auto_cpu_cuda_are_refused_before_data_loads(tmp_path, capsys, device):
    argv = ["run", "--method", "ce", "--dataset", "imagenet_lt", "--data-root", str(tmp_path / "absent"),
            "--device", device, "--output", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    assert f"--device must be auto, cpu, cuda or cuda:N (a GPU's index), got {device!r}" in _one_error(capsys)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--method", "ce", "--milestones", "3"],
         "--milestones is used by --schedule multistep (or by a method that switches there, such as "
         "ldam_drw), and 'ce' under --schedule cosine ignores it; drop --milestones or pass --schedule "
         "multistep"),
        (["--method", "ldam_drw", "--milestones", "-3"],
         "--milestones must be sorted epochs below --epochs 1, got -3"),
        (["--method", "ldam_drw", "--milestones", "500"],
         "--milestones must be sorted epochs below --epochs 1, got 500"),
        (["--method", "ce", "--custom-lists"],
         "--custom-lists names other split-list files, and digits_lt is not read from any (its splits are "
         "built in); drop --custom-lists"),
        (["--method", "cmo", "--finetune", "linear"],
         "--finetune linear trains on features cached once, and method 'cmo' mixes the images of each "
         "batch; pass --finetune full or peft"),
        (["--method", "bcl", "--finetune", "linear"],
         "--finetune linear trains on features cached once, and method 'bcl' trains on 3 augmented views "
         "of each image; pass --finetune full or peft"),
    ],
)  # fmt: skip
def test_options_a_method_or_schedule_cannot_honour_are_one_line_errors(tmp_path, capsys, options, message):
    assert main([*DIGITS, *options, "--output", str(tmp_path)]) == 2
    assert message in _one_error(capsys)
    assert not (tmp_path / "runs").exists()


def test_ldam_drw_takes_milestones_under_cosine_for_its_drw_switch():
    config = resolve_config("ldam_drw", "digits_lt", epochs=4, milestones=(2,))
    assert config.schedule == "cosine" and config.milestones == (2,)


@pytest.mark.parametrize(
    "method, epochs, smallest",
    [("ldam_drw", 1, 6), ("ldam_drw", 5, 6), ("causal_tde", 2, 3)],  # drops 160, 180 / 119, 159 of 200
)
def test_a_paper_recipe_whose_decays_collapse_is_refused_with_the_smallest_epochs(
    capsys, method, epochs, smallest
):
    argv = [
        "recipe",
        "--method",
        method,
        "--dataset",
        "cifar10_lt",
        "--protocol",
        "paper",
        "--epochs",
        str(epochs),
    ]
    assert main(argv) == 2
    error = _one_error(capsys)
    assert f"--epochs {epochs} moves the paper recipe's lr milestones" in error
    assert error.endswith(f"pass --epochs {smallest} or more, or --milestones")
    assert main([*argv[:-1], str(smallest)]) == 0
    assert main([*argv, "--milestones", "0"]) == 0  # given milestones are the user's choice


def test_a_peft_rank_larger_than_the_backbone_is_refused_before_the_adapters_exist(tmp_path, capsys):
    argv = [*DIGITS, "--method", "ce", "--backbone", "finetune_test_vit", "--finetune", "peft",
            "--peft-rank", str(10**9), "--device", "cpu", "--output", str(tmp_path)]  # fmt: skip
    assert main(argv) == 2
    error = _one_error(capsys)
    assert f"--peft-rank {10**9} is larger than backbone 'finetune_test_vit' allows (its blocks are " in error
    assert not (tmp_path / "runs").exists()
