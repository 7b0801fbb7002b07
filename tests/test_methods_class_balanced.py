"""Effective-number class weights against hand-computed and published values."""

import math

import pytest
import torch

from lt_bench.method import MethodContext
from lt_bench.methods.class_balanced import ClassBalanced, effective_number_weights


def test_two_classes_with_beta_one_half():
    # (1 − β)/(1 − β^n): n = 1 → 0.5/0.5 = 1; n = 2 → 0.5/0.75 = 2/3; sum 5/3, scaled to sum 2:
    # [1·6/5, (2/3)·6/5] = [1.2, 0.8]
    weights = effective_number_weights([1, 2], beta=0.5)
    assert weights.tolist() == pytest.approx([1.2, 0.8], rel=1e-6)


def test_beta_zero_gives_uniform_weights():
    assert effective_number_weights([5000, 50, 7], beta=0.0).tolist() == pytest.approx([1.0] * 3)


def test_cifar10_lt_ir100_matches_the_published_weights():
    # LDAM-DRW's Reweight rule on CIFAR-10-LT IR 100, β = 0.9999 (shared/reference/baselines.md §4).
    counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    published = [0.0506, 0.0769, 0.1211, 0.1950, 0.3188, 0.5246, 0.8683, 1.4426, 2.4092, 3.9927]
    weights = effective_number_weights(counts)
    assert weights.tolist() == pytest.approx(published, abs=1e-4)
    assert weights.sum().item() == pytest.approx(10.0, rel=1e-6)


def test_a_class_without_images_gets_weight_zero_and_the_rest_still_sum_to_c():
    # Seen classes as in the first test ([1, 2/3], sum 5/3), scaled to sum 3: [1.8, 1.2].
    weights = effective_number_weights([0, 1, 2], beta=0.5)
    assert weights.tolist() == pytest.approx([0.0, 1.8, 1.2], rel=1e-6)


def test_method_loss_is_the_weighted_mean_of_cross_entropy():
    # counts [1, 2], β = 0.9999: raw weights 1 and 1e-4/(1 − 0.9999²) = 1/1.9999, so
    # w = [2·1.9999/2.9999, 2/2.9999]. Sample A (class 0, logits [0, 0]) has CE ln 2;
    # sample B (class 1, logits [ln 3, 0]) has CE ln 4. Weighted mean Σ w·CE / Σ w:
    w0, w1 = 2 * 1.9999 / 2.9999, 2 / 2.9999
    expected = (w0 * math.log(2) + w1 * math.log(4)) / (w0 + w1)
    context = MethodContext("digits_lt", 2, (1, 2), 2, 10, 1, 0.1)
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    loss = ClassBalanced(context).loss(logits, torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
