"""Formulas of bal_bce, weight balancing, CMO and BCL against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.method import Method, MethodContext, MixedBatch
from lt_bench.methods.bal_bce import balanced_bce_loss
from lt_bench.methods.bcl import BalancedContrastiveLearning, balanced_contrastive_loss
from lt_bench.methods.cmo import ContextRichMinorityOversampling, cutmix_box, mixes_in_epoch, paste_box
from lt_bench.methods.weight_balancing import (
    WeightBalancing,
    max_norm_radius,
    project_rows,
    softmax_class_balanced_loss,
)


def _context(epochs: int = 10) -> MethodContext:
    return MethodContext("digits_lt", 2, (30, 10), 4, epochs, 5, 0.1)


def test_balanced_bce_shifts_logits_by_the_prior_log_odds_and_scales_by_the_classes():
    logits, targets, priors = torch.zeros(1, 2), torch.tensor([0]), [0.75, 0.25]
    # log-odds ±log 3; hard targets: BCE(log 3, 1) = BCE(−log 3, 0) = log(4/3); mean × C = 2·log(4/3).
    hard = balanced_bce_loss(logits, targets, priors, smoothing=0.0)
    assert hard.item() == pytest.approx(2 * math.log(4 / 3), abs=1e-6)
    # ε = 0.1: targets 0.95 / 0.05; BCE(x, t) = log(1 + e^x) − t·x.
    entry = math.log(4) - 0.95 * math.log(3)
    assert balanced_bce_loss(logits, targets, priors).item() == pytest.approx(2 * entry, abs=1e-6)


def test_max_norm_projects_only_rows_beyond_the_radius_from_the_stage_one_norms():
    weight = torch.tensor([[1.0, 0.0], [0.0, 3.0], [3.0, 4.0]])  # norms 1, 3, 5
    radius = max_norm_radius(weight)
    assert radius == pytest.approx(1.0 + 0.1 * (5.0 - 1.0))
    projected = project_rows(torch.tensor([[3.0, 4.0], [0.6, 0.8]]), radius)
    assert torch.allclose(projected, torch.tensor([[0.84, 1.12], [0.6, 0.8]]))


def test_weight_balancing_projects_the_classifier_after_each_epochs_last_step_only():
    # As the official trainval.py, which calls MaxNorm's PGD once per training phase; 3 steps an epoch.
    method = WeightBalancing(MethodContext("digits_lt", 2, (30, 10), 2, 10, 3, 0.1))
    model = nn.ModuleDict({"backbone": nn.Linear(2, 2), "head": nn.Linear(2, 2)})
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 3.0]]))  # norms 1, 3: radius 1.2
        method.prepare_second_stage(model)
        model.head.weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
        for _ in range(2):
            method.on_step_end(model)
        assert torch.equal(model.head.weight, torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
        method.on_step_end(model)  # the epoch's last step: the row of norm 5 is scaled to 1.2
    assert torch.allclose(model.head.weight, torch.tensor([[0.72, 0.96], [0.0, 1.0]]))
    restored = WeightBalancing(method.context)
    restored.load_state_dict(method.state_dict())
    assert (restored.radius, restored.steps_taken) == (pytest.approx(1.2), 3)


def test_softmax_class_balanced_loss_weights_every_entry_by_the_targets_class():
    # softmax(0, 0) = (½, ½): both entries' BCE is log 2, each weighted by w_{y} = 2.
    loss = softmax_class_balanced_loss(torch.zeros(1, 2), torch.tensor([0]), torch.tensor([2.0, 0.5]))
    assert loss.item() == pytest.approx(2 * math.log(2), abs=1e-6)


def test_cutmix_pastes_a_box_and_lambda_is_the_uncovered_share():
    images, others = torch.zeros(2, 1, 8, 8), torch.ones(2, 1, 8, 8)
    mixed, share = paste_box(images, others, (0, 2, 4, 6))
    assert share == pytest.approx(1 - 16 / 64)
    assert mixed.sum().item() == 2 * 16 and mixed[:, :, :4, 2:6].eq(1).all()
    assert images.sum() == 0  # the batch itself is left as it was
    for seed in range(50):  # λ = 0.75: sides ⌊8·½⌋ = 4 around a uniform centre, clipped to the image
        top, left, bottom, right = cutmix_box(8, 8, 0.75, np.random.default_rng(seed))
        assert 0 <= top <= bottom <= 8 and 0 <= left <= right <= 8
        assert bottom - top <= 4 and right - left <= 4


def test_cmo_mixes_about_half_the_steps_of_the_middle_epochs_only():
    assert [mixes_in_epoch(epoch, 10) for epoch in range(10)] == [False] * 4 + [True] * 3 + [False] * 3
    method = ContextRichMinorityOversampling(_context())
    batch, second = (torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
    other = (torch.ones(4, 1, 8, 8), torch.ones(4, dtype=torch.long))
    mixed = [method.mix_batch(batch, second, other, 4, np.random.default_rng(seed)) for seed in range(200)]
    assert 70 < sum(m is not None for m in mixed) < 130
    assert all(method.mix_batch(batch, second, other, 3, np.random.default_rng(s)) is None for s in range(50))
    # Its sampler: every class equally likely (α = 1), whatever its size.
    labels = torch.tensor([0] * 90 + [1] * 10)
    order = method.mixing_sample_order(labels, torch.Generator().manual_seed(0))
    assert 0.4 < labels[order].float().mean().item() < 0.6


def test_mixed_loss_is_the_share_weighted_loss_of_both_targets():
    logits = torch.tensor([[0.0, math.log(3)]])  # CE(·, 0) = log 4, CE(·, 1) = log 4/3
    mixed = MixedBatch(torch.zeros(1), torch.tensor([0]), torch.tensor([1]), 0.75)
    expected = 0.75 * math.log(4) + 0.25 * math.log(4 / 3)
    assert Method(_context()).mixed_loss(logits, mixed).item() == pytest.approx(expected, abs=1e-6)


def test_balanced_contrastive_loss_class_averages_and_complements():
    # One image of class 0, two views p1 = e1, p2 = e2; prototypes c0 = e1, c1 = e2; temperature 1.
    # Batch counts with prototypes: class 0 three times, class 1 once.
    views = torch.eye(2)
    prototypes = torch.eye(2)
    loss = balanced_contrastive_loss(views, torch.tensor([0]), prototypes, temperature=1.0)
    # Anchor p1 (row max 1): p2 at −1 and c0 at 0 are positives (weight 1/2 each), c1 at −1 (weight 1).
    first_denominator = math.exp(-1) / 2 + math.exp(0) / 2 + math.exp(-1)
    first = -((-1 - math.log(first_denominator)) + (0 - math.log(first_denominator))) / 2
    # Anchor p2: p1 and c0 at −1 (positives, 1/2 each), c1 at 0 (weight 1).
    second_denominator = math.exp(-1) / 2 + math.exp(-1) / 2 + math.exp(0)
    second = -(-1 - math.log(second_denominator))
    assert loss.item() == pytest.approx((first + second) / 2, abs=1e-6)


def test_balanced_contrastive_loss_matches_its_unbatched_definition():
    generator = torch.Generator().manual_seed(0)
    views = F.normalize(torch.randn(6, 3, generator=generator), dim=1)
    prototypes = F.normalize(torch.randn(3, 3, generator=generator), dim=1)
    targets = torch.tensor([0, 2, 0])
    labels = torch.cat([targets, targets, torch.arange(3)])
    everything = torch.cat([views, prototypes])
    counts = torch.bincount(labels).double()
    total = 0.0
    for i in range(6):  # Eq. 6 anchor by anchor, in float64
        others = [k for k in range(len(labels)) if k != i]
        weight = {k: counts[labels[k]] - (labels[k] == labels[i]).double() for k in others}
        scores = {k: float(views[i] @ everything[k]) / 0.07 for k in others}
        denominator = sum(math.exp(scores[k]) / weight[k] for k in others)
        positives = [k for k in others if labels[k] == labels[i]]
        total += -sum(scores[k] - math.log(denominator) for k in positives) / len(positives)
    assert balanced_contrastive_loss(views, targets, prototypes).item() == pytest.approx(total / 6, rel=1e-4)


def test_bcl_takes_ce_from_the_first_view_and_the_contrastive_loss_from_the_other_two():
    # As the official main.py: CE on the first of three views' logits, L_BCL on the projections of the
    # second and third. With the projection's BatchNorm on running statistics the views are separable.
    method = BalancedContrastiveLearning(MethodContext("digits_lt", 2, (30, 10), 4, 10, 5, 0.1))
    method.build_head().eval()
    assert method.views == 3
    generator = torch.Generator().manual_seed(0)
    logits, features = torch.randn(6, 2, generator=generator), torch.randn(6, 4, generator=generator)
    targets = torch.tensor([0, 1])
    loss = method.loss_with_features(logits, features, targets)
    other_first_features = torch.cat([torch.randn(2, 4, generator=generator), features[2:]])
    other_later_logits = torch.cat([logits[:2], torch.randn(4, 2, generator=generator)])
    assert method.loss_with_features(logits, other_first_features, targets) == loss
    assert method.loss_with_features(other_later_logits, features, targets) == loss
    assert method.loss_with_features(logits, features.flip(0), targets) != loss


def test_bcl_classifies_with_thirty_times_the_cosine_as_the_official_normed_linear():
    method = BalancedContrastiveLearning(MethodContext("digits_lt", 2, (30, 10), 2, 10, 5, 0.1))
    head = method.build_head()
    with torch.no_grad():
        head.classifier.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    logits = head(torch.tensor([[2.0, 0.0]]))
    torch.testing.assert_close(logits, torch.tensor([[30.0, 30.0 / 2**0.5]]))
