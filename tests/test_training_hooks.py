"""The contract's training hooks (batch mixing, several views, parameter groups, step end): a run
stopped mid-epoch while they are active resumes to the same record as an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lt_bench.cli import main
from lt_bench.method import Method, MethodContext
from lt_bench.methods.bcl import BalancedContrastiveLearning
from lt_bench.methods.cmo import ContextRichMinorityOversampling
from lt_bench.methods.weight_balancing import WeightBalancing
from lt_bench.records import read_record
from lt_bench.training import StagePlan, make_optimizer

STEPS_PER_EPOCH = 60  # digits_lt: 486 training images, batch 8
# method class, epochs, how many steps train before the stop (CMO: inside epoch 5, where it mixes)
CASES = {
    "cmo": (ContextRichMinorityOversampling, 8, 4 * STEPS_PER_EPOCH + 17),
    "bcl": (BalancedContrastiveLearning, 2, STEPS_PER_EPOCH + 17),
    "weight_balancing": (WeightBalancing, 2, 17),  # stage 2's steps; stage 1 trains whole
}


def _command(method: str, epochs: int, output: Path) -> list[str]:
    return [
        "run", "--method", method, "--dataset", "digits_lt", "--epochs", str(epochs), "--batch-size", "8",
        "--threads", "1", "--checkpoint-every", "0", "--output", str(output),
    ]  # fmt: skip


def _result(output: Path, method: str) -> dict:
    (record,) = (output / "records").glob(f"*-{method}-*.json")
    values = read_record(record)
    return {key: values[key] for key in ("metrics", "per_class_accuracy", "test_predictions")}


@pytest.mark.parametrize("method", sorted(CASES))
def test_a_run_stopped_mid_epoch_resumes_bit_for_bit(method, tmp_path, monkeypatch):
    method_class, epochs, stop_after = CASES[method]
    assert main(_command(method, epochs, tmp_path / "reference")) == 0
    steps = 0
    original = method_class.on_step_end

    def stop(self: Method, model: nn.Module) -> None:  # a kill right after a step's update
        nonlocal steps
        original(self, model)
        steps += 1
        if steps == stop_after:
            raise KeyboardInterrupt

    monkeypatch.setattr(method_class, "on_step_end", stop)
    assert main(_command(method, epochs, tmp_path / "stopped")) != 0  # "interrupted; rerun … to resume"
    monkeypatch.undo()
    assert not list((tmp_path / "stopped" / "records").glob(f"*-{method}-*.json"))
    assert main(_command(method, epochs, tmp_path / "stopped")) == 0
    assert _result(tmp_path / "stopped", method) == _result(tmp_path / "reference", method)


class NoDecayOnBiases(Method):
    """A method with two optimizer groups: biases undecayed, the rest at twice the recipe's decay."""

    def parameter_groups(self, model: nn.Module, weight_decay: float) -> list[dict]:
        biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
        rest = [p for name, p in model.named_parameters() if not name.endswith("bias")]
        return [{"params": biases, "weight_decay": 0.0}, {"params": rest, "weight_decay": 2 * weight_decay}]


def _plan() -> StagePlan:
    return StagePlan(
        epochs=1, batch_size=2, learning_rate=lambda epoch: 0.1, momentum=0.9, weight_decay=1e-3, seed=0
    )


def test_parameter_groups_set_each_groups_weight_decay_and_the_default_keeps_one_group():
    model = nn.Linear(3, 2)
    context = MethodContext("digits_lt", 2, (3, 1), 3, 1, 1, 0.1)
    default = make_optimizer(model, _plan(), Method(context))
    assert [(len(g["params"]), g["weight_decay"]) for g in default.param_groups] == [(2, 1e-3)]
    grouped = make_optimizer(model, _plan(), NoDecayOnBiases(context))
    assert [(len(g["params"]), g["weight_decay"]) for g in grouped.param_groups] == [(1, 0.0), (1, 2e-3)]
    model.weight.grad, model.bias.grad = torch.zeros(2, 3), torch.zeros(2)
    before = model.bias.detach().clone(), model.weight.detach().clone()
    grouped.step()  # zero gradients: only the decay moves a weight
    assert torch.equal(model.bias, before[0]) and not torch.equal(model.weight, before[1])


def test_a_method_cannot_both_mix_batches_and_take_several_views():
    with pytest.raises(TypeError, match="MixingTwoViews sets views = 2 and overrides mix_batch: batch mix"):

        class MixingTwoViews(ContextRichMinorityOversampling):
            views = 2
