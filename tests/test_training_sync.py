"""The training loop never waits for the device within an epoch: the loss totals and the NaN check
live on the device and are read every 50 steps, before each checkpoint and at each epoch end. A NaN
still names its first step and leaves the last good checkpoint; fp16's loss scale resumes exactly."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lt_bench.backbones import LongTailClassifier, create_backbone
from lt_bench.checkpoint import read_checkpoint
from lt_bench.cli import main
from lt_bench.data.base import DATASETS, DataOptions
from lt_bench.method import METHODS, MethodContext
from lt_bench.records import read_record
from lt_bench.training import CHECK_EVERY_STEPS, StagePlan, train

DIGITS = "run --method ce --dataset digits_lt --epochs 2".split()  # 486 training images
HOST_READS = ("item", "tolist", "__int__", "__float__", "__bool__", "numpy")


def _train_digits(method_name: str, batch_size: int, folder: Path, device: torch.device) -> None:
    """Two epochs of `lt_bench.training.train` on digits_lt, as a run does (checkpoint each epoch)."""
    data = DATASETS.get("digits_lt")().load(DataOptions())
    torch.manual_seed(0)
    backbone = create_backbone("lt_small_cnn", data.in_chans)
    steps = len(data.train) // batch_size
    context = MethodContext("digits_lt", 10, tuple(data.class_counts), backbone.num_features, 2, steps, 0.05)
    method = METHODS.get(method_name)(context)
    model = LongTailClassifier(backbone, method.build_head()).to(device)
    plan = StagePlan(2, batch_size, lambda epoch: 0.05, 0.9, 5e-4, seed=0, precision="fp32")
    train(
        model, method, data.train, plan, device=device, checkpoint_path=folder / "checkpoint.pt",
        log_path=folder / "log.jsonl", extra_checkpoint={}, checkpoint_seconds=float("inf"),
    )  # fmt: skip


@pytest.mark.parametrize("method_name", ["ce", "causal_tde"])
def test_the_host_reads_a_tensor_as_often_with_40_steps_an_epoch_as_with_10(
    method_name, tmp_path, monkeypatch
):
    reads = []

    def counted(name):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            reads.append(name)
            return original(self, *args, **kwargs)

        return read

    counts = {}
    for batch_size in (48, 12):  # 10 and 40 steps an epoch, both below the 50-step check
        with monkeypatch.context() as patch:
            for name in HOST_READS:
                patch.setattr(torch.Tensor, name, counted(name))
            _train_digits(method_name, batch_size, tmp_path / str(batch_size), torch.device("cpu"))
        counts[batch_size], reads[:] = len(reads), []
    assert counts[48] == counts[12] <= 8, counts  # a read a step would add 30 an epoch


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("method_name", ["ce", "causal_tde"])
def test_no_synchronising_cuda_call_happens_per_step(method_name, tmp_path):
    counts = {}
    for batch_size in (48, 12):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                _train_digits(method_name, batch_size, tmp_path / str(batch_size), torch.device("cuda"))
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts[batch_size] = sum("synchronizing" in str(warning.message) for warning in caught)
    assert counts[48] == counts[12], counts


def _nan_loss_at_call(number: int, calls: list[int]):
    cross_entropy = F.cross_entropy

    def cross_entropy_with_a_nan(*args, **kwargs):  # the fault, injected into torch
        loss = cross_entropy(*args, **kwargs)
        if not torch.is_grad_enabled():  # evaluation (the validation curve's nll), not a training step
            return loss
        calls.append(1)
        return loss * float("nan") if len(calls) == number else loss

    return cross_entropy_with_a_nan


@pytest.mark.parametrize(
    ("batch_size", "bad_call", "epoch", "step", "checked_after", "kept"),
    [
        # 30 steps an epoch: found at the end of epoch 2, the checkpoint of epoch 1 kept
        (16, 40, 2, 10, 60, (1, 0)),
        # 60 steps an epoch: found by the check after 50 steps, before any checkpoint
        (8, 3, 1, 3, CHECK_EVERY_STEPS, None),
    ],
)
def test_a_nan_loss_is_found_without_a_per_step_check_and_named_at_its_first_step(
    batch_size, bad_call, epoch, step, checked_after, kept, tmp_path, capsys, monkeypatch
):
    calls: list[int] = []
    monkeypatch.setattr(F, "cross_entropy", _nan_loss_at_call(bad_call, calls))
    assert main([*DIGITS, "--batch-size", str(batch_size), "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert re.search(rf"lt-bench: error: loss became nan at epoch {epoch}, step {step};", err)
    assert len(calls) == checked_after  # the steps after the NaN ran until the next read of the flag
    (folder,) = (tmp_path / "runs").iterdir()
    if kept is None:
        assert not (folder / "checkpoint.pt").exists()
    else:
        checkpoint = read_checkpoint(folder / "checkpoint.pt")
        assert (checkpoint["progress"]["epoch"], checkpoint["progress"]["step"]) == kept
        assert all(torch.isfinite(value).all() for value in checkpoint["model"].values())
    (record,) = (tmp_path / "records").glob("*.json")
    assert read_record(record)["status"] == "failed"


def _outcome(output: Path) -> tuple[dict, dict]:
    """The record's results and the final checkpoint (weights, loss scale)."""
    (record,) = (output / "records").glob("*.json")
    (folder,) = (output / "runs").iterdir()
    results = read_record(record)
    return {key: results[key] for key in ("metrics", "test_predictions")}, read_checkpoint(
        folder / "checkpoint.pt"
    )


def test_an_fp16_run_stopped_mid_training_resumes_exactly_with_its_loss_scale(tmp_path, monkeypatch):
    command = [*DIGITS, "--batch-size", "16", "--precision", "fp16", "--checkpoint-every", "0", "--output"]
    assert main([*command, str(tmp_path / "uninterrupted")]) == 0
    backward, calls = torch.Tensor.backward, []

    def backward_that_runs_out_of_memory(self, *args, **kwargs):  # the fault, injected into torch
        calls.append(1)
        if len(calls) == 40:  # epoch 2, step 10
            raise MemoryError
        return backward(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", backward_that_runs_out_of_memory)
    assert main([*command, str(tmp_path / "stopped")]) == 2
    monkeypatch.setattr(torch.Tensor, "backward", backward)
    assert main([*command, str(tmp_path / "stopped")]) == 0

    (results, checkpoint), (resumed, resumed_checkpoint) = map(
        _outcome, (tmp_path / "uninterrupted", tmp_path / "stopped")
    )
    assert resumed == results
    assert resumed_checkpoint["scaler"] == checkpoint["scaler"]
    assert checkpoint["scaler"]["_growth_tracker"] == 60  # 60 steps without an overflow
    for name, weight in checkpoint["model"].items():
        assert torch.equal(resumed_checkpoint["model"][name], weight), name
