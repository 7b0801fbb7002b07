"""LDAM margins, loss, cosine head and the DRW switch against hand-computed values."""

import math

import pytest
import torch

from lt_bench.method import MethodContext
from lt_bench.methods.ldam import (
    LDAM,
    LDAMDRW,
    NormalisedLinear,
    ldam_loss,
    ldam_margins,
    reweighting_epoch,
)


def test_margins_follow_the_inverse_fourth_root_with_the_rarest_at_max():
    # n^{−1/4} of [81, 16, 1] = [1/3, 1/2, 1]; K = 0.5 / 1 → [1/6, 1/4, 1/2]
    assert ldam_margins([81, 16, 1]).tolist() == pytest.approx([1 / 6, 1 / 4, 1 / 2], rel=1e-6)
    assert ldam_margins([16, 1], max_margin=0.3).tolist() == pytest.approx([0.15, 0.3], rel=1e-6)


def test_cifar10_lt_ir100_margins_match_the_reference():
    # 0.5·(50/5000)^{1/4} = 0.5·0.1^{1/2} = 0.15811 on the head class, 0.5 on the tail.
    counts = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    margins = ldam_margins(counts)
    assert margins[0].item() == pytest.approx(0.5 * math.sqrt(0.1), rel=1e-6)
    assert margins[-1].item() == pytest.approx(0.5)


def test_a_class_without_images_gets_margin_zero():
    assert ldam_margins([0, 16, 1]).tolist() == pytest.approx([0.0, 0.25, 0.5], rel=1e-6)


def test_loss_subtracts_the_true_class_margin_then_scales():
    # counts [16, 1] → margins [0.25, 0.5]; scale 2; cosine logits [0.5, 0.25] for both samples.
    #   target 1: [0.5, 0.25 − 0.5]·2 = [1, −0.5] → CE = 0.5 + ln(e + e^{−0.5})
    #   target 0: [0.5 − 0.25, 0.25]·2 = [0.5, 0.5] → CE = ln 2
    ce_1 = 0.5 + math.log(math.e + math.exp(-0.5))
    ce_0 = math.log(2)
    logits = torch.tensor([[0.5, 0.25], [0.5, 0.25]])
    targets = torch.tensor([1, 0])
    loss = ldam_loss(logits, targets, [16, 1], scale=2.0)
    assert loss.item() == pytest.approx((ce_1 + ce_0) / 2, rel=1e-6)
    weighted = ldam_loss(logits, targets, [16, 1], scale=2.0, weight=torch.tensor([1.0, 3.0]))
    assert weighted.item() == pytest.approx((3 * ce_1 + 1 * ce_0) / 4, rel=1e-6)


def test_default_scale_is_thirty():
    # counts [1, 1] → both margins 0.5; logits [0, 0], target 0 → [−15, 0] → CE = 15 + ln(1 + e^{−15})
    loss = ldam_loss(torch.zeros(1, 2), torch.tensor([0]), [1, 1])
    assert loss.item() == pytest.approx(15 + math.log1p(math.exp(-15)), rel=1e-6)


def test_normalised_head_gives_cosines_without_bias():
    head = NormalisedLinear(2, 2)
    assert not any(name == "bias" for name, _ in head.named_parameters())
    assert head.weight.norm(dim=1).tolist() == pytest.approx([1.0, 1.0], rel=1e-6)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    # x = [3, 4] → x/‖x‖ = [0.6, 0.8]; unit rows e1, e2 → cosines [0.6, 0.8]
    assert head(torch.tensor([[3.0, 4.0]])).tolist()[0] == pytest.approx([0.6, 0.8], rel=1e-6)


def context(epochs=30, milestones=(), counts=(1, 2)):
    return MethodContext("digits_lt", len(counts), counts, 2, epochs, 1, 0.1, milestones)


def test_ldam_builds_the_normalised_head_and_infers_with_scaled_cosines():
    method = LDAM(context())
    head = method.build_head()
    assert isinstance(head, NormalisedLinear)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    # cosines [0.6, 0.8] (previous test) times s = 30
    logits = method.inference_logits(head, torch.tensor([[3.0, 4.0]]))
    assert logits.tolist()[0] == pytest.approx([18.0, 24.0], rel=1e-6)


def test_reweighting_starts_at_the_first_milestone_or_at_four_fifths():
    assert reweighting_epoch(context(epochs=200, milestones=(180, 160))) == 160
    assert reweighting_epoch(context(epochs=30)) == 24  # 30·160/200
    assert reweighting_epoch(context(epochs=200)) == 160


def test_drw_switches_class_balanced_weights_on_at_the_lr_drop():
    # counts [1, 2]: margins m = [0.5, 0.5·2^{−1/4}]; cosine logits 0; targets [0, 1]; s = 30.
    #   sample A (class 0): [−15, 0]        → CE_A = 15 + ln(1 + e^{−15})
    #   sample B (class 1): [0, −30·m_1]    → CE_B = 30·m_1 + ln(1 + e^{−30·m_1})
    # DRW weights (β = 0.9999): w = [2·1.9999/2.9999, 2/2.9999] (see test_methods_class_balanced).
    m1 = 0.5 * 2**-0.25
    ce_a = 15 + math.log1p(math.exp(-15))
    ce_b = 30 * m1 + math.log1p(math.exp(-30 * m1))
    w0, w1 = 2 * 1.9999 / 2.9999, 2 / 2.9999
    logits, targets = torch.zeros(2, 2), torch.tensor([0, 1])
    method = LDAMDRW(context(epochs=30))
    method.on_epoch_start(23, 0.1)
    assert method.loss(logits, targets).item() == pytest.approx((ce_a + ce_b) / 2, rel=1e-6)
    method.on_epoch_start(24, 0.01)
    expected = (w0 * ce_a + w1 * ce_b) / (w0 + w1)
    assert method.loss(logits, targets).item() == pytest.approx(expected, rel=1e-5)


def test_plain_ldam_never_reweights():
    method = LDAM(context(epochs=30))
    method.on_epoch_start(29, 0.001)
    logits, targets = torch.zeros(2, 2), torch.tensor([0, 1])
    m1 = 0.5 * 2**-0.25
    expected = (15 + math.log1p(math.exp(-15)) + 30 * m1 + math.log1p(math.exp(-30 * m1))) / 2
    assert method.loss(logits, targets).item() == pytest.approx(expected, rel=1e-6)
