"""BalPoE against hand-computed values: the mean of the experts' logit-adjusted losses, the average."""

import math

import pytest
import torch

from lt_bench.method import MethodContext
from lt_bench.methods.balpoe import BalPoE, balanced_experts_loss

PRIORS = torch.tensor([0.75, 0.25], dtype=torch.float64)


def test_loss_is_the_mean_of_each_experts_logit_adjusted_cross_entropy():
    # logits 0, target 1, π = (3/4, 1/4): λ = 0 → ln 2; λ = 1 → softmax = π → ln 4;
    # λ = 2 → softmax ∝ π² = (9/16, 1/16) → p(1) = 1/10 → ln 10
    loss = balanced_experts_loss(torch.zeros(1, 3, 2), torch.tensor([1]), PRIORS)
    assert loss.item() == pytest.approx((math.log(2) + math.log(4) + math.log(10)) / 3, rel=1e-6)


def test_each_expert_takes_its_own_lambda():
    # only expert 1 (λ = 1) sees logits favouring class 1 by ln 3: its adjusted logits cancel the prior
    logits = torch.zeros(1, 3, 2)
    logits[0, 1] = torch.tensor([0.0, math.log(3)])
    loss = balanced_experts_loss(logits, torch.tensor([1]), PRIORS)
    assert loss.item() == pytest.approx((math.log(2) + math.log(2) + math.log(10)) / 3, rel=1e-6)


def test_prediction_is_the_average_of_the_experts_logits():
    method = BalPoE(MethodContext("digits_lt", 2, (3, 1), 2, 1, 1, 0.1))
    expert_logits = torch.tensor([[[3.0, 0.0], [0.0, 0.0], [0.0, 6.0]]])
    assert method.combine_experts(expert_logits).tolist() == [[1.0, 2.0]]
