"""Softmax focal loss against values worked out by hand."""

import math

import pytest
import torch

from lt_bench.method import MethodContext
from lt_bench.methods.focal import Focal, focal_loss

# Two samples, both of class 0:
#   A: logits [0, 0]    → CE_A = ln 2,     p_A = 1/2
#   B: logits [ln 3, 0] → CE_B = ln(4/3),  p_B = 3/4
LOGITS = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
TARGETS = torch.tensor([0, 0])
CE_A, CE_B = math.log(2.0), math.log(4.0 / 3.0)


def test_gamma_one_weights_each_sample_by_one_minus_p():
    # mean((1 − 1/2)·ln 2, (1 − 3/4)·ln(4/3))
    expected = (0.5 * CE_A + 0.25 * CE_B) / 2
    assert focal_loss(LOGITS, TARGETS).item() == pytest.approx(expected, rel=1e-6)


def test_gamma_two_squares_the_factor():
    expected = (0.25 * CE_A + 0.0625 * CE_B) / 2
    assert focal_loss(LOGITS, TARGETS, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)


def test_gamma_zero_is_cross_entropy():
    assert focal_loss(LOGITS, TARGETS, gamma=0.0).item() == pytest.approx((CE_A + CE_B) / 2, rel=1e-6)


def test_class_weights_scale_ce_inside_p_and_reduce_by_plain_mean():
    # w = [2, 1]: ℓ_A = 2 ln 2, p_A = e^{−ℓ_A} = 1/4; ℓ_B = 2 ln(4/3), p_B = (3/4)² = 9/16.
    # The official code then takes a plain mean (not Σ w·ℓ / Σ w):
    expected = (0.75 * 2 * CE_A + (7 / 16) * 2 * CE_B) / 2
    weight = torch.tensor([2.0, 1.0])
    assert focal_loss(LOGITS, TARGETS, weight=weight).item() == pytest.approx(expected, rel=1e-6)


def test_method_uses_gamma_one():
    context = MethodContext("digits_lt", 2, (5, 1), 2, 10, 1, 0.1)
    expected = (0.5 * CE_A + 0.25 * CE_B) / 2
    assert Focal(context).loss(LOGITS, TARGETS).item() == pytest.approx(expected, rel=1e-6)
