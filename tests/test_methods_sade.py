"""SADE against hand-computed values: the inverse prior, the three experts' losses, the aggregation,
and the test-time self-supervised weights (prediction stability of two views, the official stop)."""

import math

import pytest
import torch

from lt_bench.experts import ExpertHeads, weighted_experts
from lt_bench.method import MethodContext
from lt_bench.methods.sade import (
    SADE,
    inverse_prior,
    prediction_stability,
    self_supervised_aggregation,
    skill_diverse_loss,
)

PRIORS = torch.tensor([0.75, 0.25], dtype=torch.float64)


def test_inverse_prior_gives_each_class_its_mirror_in_the_frequency_ranking():
    # sorted 0.2 < 0.3 < 0.5: the most frequent class gets the smallest prior and vice versa
    assert inverse_prior(torch.tensor([0.5, 0.2, 0.3])).tolist() == pytest.approx([0.2, 0.5, 0.3])


def test_skill_diverse_loss_sums_long_tailed_balanced_and_inverse_cross_entropies():
    # logits 0, target 1, π = (3/4, 1/4), π̄ = (1/4, 3/4), λ = 2:
    # long-tailed CE = ln 2; balanced: softmax = π → ln 4;
    # inverse: logits ln π − 2 ln π̄ = (ln 12, ln 4/9) → p(1) = (4/9) / (12 + 4/9) = 1/28 → ln 28
    loss = skill_diverse_loss(torch.zeros(1, 3, 2), torch.tensor([1]), PRIORS)
    assert loss.item() == pytest.approx(math.log(2) + math.log(4) + math.log(28), rel=1e-6)


def test_prediction_stability_is_the_cosine_of_the_aggregated_softmax_of_two_views():
    # equal weights: view 1 aggregates to (ln √3, 0) → softmax (√3, 1)/(√3 + 1); view 2 to (0, 0) →
    # (1/2, 1/2); their cosine is cos 15° = (√6 + √2)/4
    view = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0]]])
    other_view = torch.zeros(1, 2, 2)
    stability = prediction_stability(view, other_view, torch.zeros(2))
    assert stability.item() == pytest.approx((math.sqrt(6) + math.sqrt(2)) / 4, rel=1e-6)


def test_aggregation_leans_on_the_expert_whose_views_agree():
    # expert 0 flips its prediction between the views, expert 1 predicts class 0 in both
    view = torch.tensor([[[5.0, 0.0], [2.0, 0.0]]]).repeat(64, 1, 1)
    other_view = torch.tensor([[[0.0, 5.0], [2.0, 0.0]]]).repeat(64, 1, 1)
    weights = self_supervised_aggregation(view, other_view, torch.Generator().manual_seed(0), lr=0.1)
    assert weights.sum().item() == pytest.approx(1.0)
    assert weights[1] > 0.5 > weights[0]


def test_views_that_agree_everywhere_leave_the_weights_equal():
    # the stability is 1 whatever the weights: no gradient but weight decay, which keeps them equal
    logits = torch.randn(300, 3, 5, generator=torch.Generator().manual_seed(0))
    weights = self_supervised_aggregation(logits, logits, torch.Generator().manual_seed(0), lr=0.1)
    assert weights.tolist() == pytest.approx([1 / 3] * 3, abs=1e-7)


def test_adaptation_stops_after_the_epoch_where_a_weight_falls_below_five_hundredths():
    view = torch.tensor([[[9.0, 0.0], [3.0, 0.0]]]).repeat(8, 1, 1)
    other_view = torch.tensor([[[0.0, 9.0], [3.0, 0.0]]]).repeat(8, 1, 1)

    def weights(epochs: int) -> torch.Tensor:
        return self_supervised_aggregation(
            view, other_view, torch.Generator().manual_seed(0), lr=100.0, epochs=epochs, batch_size=4
        )

    first_epoch = weights(1)
    assert first_epoch.min() < 0.05
    assert torch.equal(weights(5), first_epoch)


def test_inference_averages_the_experts_unless_given_learnt_weights():
    method = SADE(MethodContext("digits_lt", 2, (3, 1), 2, 1, 1, 0.1))
    head = ExpertHeads([torch.nn.Identity()] * 3)
    features = torch.tensor([[3.0, 0.0]])
    assert method.inference_logits(head, features).tolist() == [[3.0, 0.0]]
    knobs = {"weight_long_tailed": 0.5, "weight_balanced": 0.25, "weight_inverse": 0.25}
    expected = weighted_experts(head(features), torch.tensor([0.5, 0.25, 0.25]))
    assert torch.equal(method.inference_logits(head, features, **knobs), expected)
    assert expected.tolist() == [[3.0, 0.0]]


def test_expert_heads_stack_scaled_logits_as_batch_experts_classes():
    head = ExpertHeads([torch.nn.Identity(), torch.nn.Flatten()], scale=30.0)
    logits = head(torch.tensor([[0.5, -1.0]]))
    assert logits.shape == (1, 2, 2)
    assert logits.tolist() == [[[15.0, -30.0], [15.0, -30.0]]]
