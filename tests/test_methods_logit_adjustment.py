"""Logit adjustment (loss and post-hoc) against hand-computed values, and the empty-class guard."""

import math

import pytest
import torch
from torch import nn

from lt_bench.errors import UserError
from lt_bench.method import MethodContext
from lt_bench.methods.logit_adjustment import (
    LogitAdjustedLoss,
    PostHocLogitAdjustment,
    class_priors,
    logit_adjusted_loss,
    posthoc_logit_adjustment,
)

PRIORS = torch.tensor([0.75, 0.25])


def test_priors_are_training_frequencies_in_class_order():
    assert class_priors([3, 1]).tolist() == pytest.approx([0.75, 0.25])


def test_loss_adds_tau_log_prior_before_cross_entropy():
    # τ = 1, logits 0: adjusted [ln 3/4, ln 1/4]; the softmax is then the prior itself, so
    # CE(target 1) = −ln 1/4 = ln 4 and CE(target 0) = ln 4/3.
    logits, targets = torch.zeros(2, 2), torch.tensor([1, 0])
    expected = (math.log(4) + math.log(4 / 3)) / 2
    assert logit_adjusted_loss(logits, targets, PRIORS).item() == pytest.approx(expected, rel=1e-6)


def test_tau_two_squares_the_priors():
    # τ = 2: softmax ∝ π² = [9/16, 1/16] → p(1) = 1/10 → CE = ln 10
    loss = logit_adjusted_loss(torch.zeros(1, 2), torch.tensor([1]), PRIORS, tau=2.0)
    assert loss.item() == pytest.approx(math.log(10), rel=1e-6)
    loss = logit_adjusted_loss(torch.zeros(1, 2), torch.tensor([1]), PRIORS, tau=0.0)
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)


def test_posthoc_subtracts_tau_log_prior():
    logits = torch.tensor([[1.0, 1.0]])
    adjusted = posthoc_logit_adjustment(logits, PRIORS)
    assert adjusted.tolist()[0] == pytest.approx([1 - math.log(0.75), 1 - math.log(0.25)], rel=1e-6)
    half = posthoc_logit_adjustment(logits, PRIORS, tau=0.5)
    expected = [1 - 0.5 * math.log(0.75), 1 - 0.5 * math.log(0.25)]
    assert half.tolist()[0] == pytest.approx(expected, rel=1e-6)


def context(counts):
    return MethodContext("digits_lt", len(counts), tuple(counts), 2, 30, 1, 0.1)


def test_loss_method_uses_training_frequencies_and_predicts_raw_logits():
    method = LogitAdjustedLoss(context([3, 1]))
    loss = method.loss(torch.zeros(1, 2), torch.tensor([1]))
    assert loss.item() == pytest.approx(math.log(4), rel=1e-6)
    head = nn.Linear(2, 2)
    features = torch.tensor([[1.0, -2.0]])
    assert torch.equal(method.inference_logits(head, features), head(features))


def test_posthoc_method_is_a_zero_epoch_stage_on_ce_with_tau_searched_on_validation():
    method = PostHocLogitAdjustment(context([3, 1]))
    assert method.first_stage == "ce"
    assert method.second_stage is None
    grid = method.test_time_knobs()["tau"]
    assert 0.0 in grid and 1.0 in grid and len(grid) > 2
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    # features [1, 1] → logits [1, 1] → [1 − ln 3/4, 1 − ln 1/4] at τ = 1
    logits = method.inference_logits(head, torch.tensor([[1.0, 1.0]]), tau=1.0)
    assert logits.tolist()[0] == pytest.approx([1 - math.log(0.75), 1 - math.log(0.25)], rel=1e-6)


@pytest.mark.parametrize("method_class", [LogitAdjustedLoss, PostHocLogitAdjustment])
def test_a_class_without_training_images_is_a_user_error_naming_the_fix(method_class):
    with pytest.raises(UserError, match=r"class\(es\) 1 have no training images.*--imbalance-ratio"):
        method_class(context([3, 0, 2]))
    with pytest.raises(UserError, match="no training images"):
        logit_adjusted_loss(torch.zeros(1, 2), torch.tensor([0]), torch.tensor([1.0, 0.0]))
