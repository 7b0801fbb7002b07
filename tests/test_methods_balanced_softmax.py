"""Balanced Softmax against hand-computed values, and the empty-class guard."""

import math

import pytest
import torch

from lt_bench.errors import UserError
from lt_bench.method import MethodContext
from lt_bench.methods.balanced_softmax import BalancedSoftmax, balanced_softmax_loss


def test_loss_adds_log_counts_before_cross_entropy():
    # counts [3, 1], logits 0 → adjusted [ln 3, 0]: p = [3/4, 1/4]
    # target 1: −ln 1/4 = ln 4; target 0: ln 4/3
    logits, targets = torch.zeros(2, 2), torch.tensor([1, 0])
    expected = (math.log(4) + math.log(4 / 3)) / 2
    assert balanced_softmax_loss(logits, targets, [3, 1]).item() == pytest.approx(expected, rel=1e-6)


def test_balanced_counts_give_plain_cross_entropy():
    # [ln 2, 0] + [ln 5, ln 5]: the shift is constant, so CE = ln(1 + 1/2) for target 0
    logits = torch.tensor([[math.log(2.0), 0.0]])
    loss = balanced_softmax_loss(logits, torch.tensor([0]), [5, 5])
    assert loss.item() == pytest.approx(math.log(1.5), rel=1e-6)


def test_method_predicts_with_raw_logits_and_refuses_empty_classes():
    context = MethodContext("digits_lt", 2, (3, 1), 2, 30, 1, 0.1)
    method = BalancedSoftmax(context)
    assert method.loss(torch.zeros(1, 2), torch.tensor([1])).item() == pytest.approx(math.log(4))
    assert method.test_time_knobs() == {}
    with pytest.raises(UserError, match=r"class\(es\) 0 have no training images"):
        BalancedSoftmax(MethodContext("digits_lt", 2, (0, 4), 2, 30, 1, 0.1))
