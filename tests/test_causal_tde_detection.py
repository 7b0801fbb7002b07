"""Causal TDE in the box head: foreground-only e, background kept from the un-removed feature."""

from __future__ import annotations

import math

import pytest
import torch

from lt_bench.method import METHODS, MethodContext
from lt_bench.methods.causal_tde import (
    background_exempted_scores,
    causal_norm_logits,
    update_foreground_average,
)


def _tde(feature_dim: int = 4, num_classes: int = 3):
    context = MethodContext("lvis_v1", num_classes, (5, 50, 500), feature_dim, 1, 1, 0.02)
    return METHODS.get("causal_tde")(context)


def test_moving_average_takes_the_mean_of_foreground_rois_only() -> None:
    features = torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]])
    # Background (label 0) is left out, category 1 (mmdet 2.x's class 0) is kept: mean of rows 1, 2.
    e = update_foreground_average(torch.tensor([1.0, 1.0]), features, torch.tensor([0, 3, 1]), momentum=0.9)
    assert e.tolist() == pytest.approx([0.9 + 2.0, 0.9 + 3.0])
    unchanged = update_foreground_average(e, torch.tensor([[9.0, 9.0]]), torch.tensor([0]), momentum=0.9)
    assert torch.equal(unchanged, e)


def test_method_updates_e_from_foreground_rois() -> None:
    method = _tde(feature_dim=2)
    method.on_roi_features(torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([0, 2]))
    assert method.moving_average.tolist() == [0.0, 2.0]


def test_background_exempted_scores_by_hand() -> None:
    # p = softmax(ln 2, 0, 0) = (0.5, 0.25, 0.25); q = softmax(0, ln 3, 0) = (0.2, 0.6, 0.2);
    # scores = (p_bg, q_i · (1 − p_bg)/(1 − q_bg)) = (0.5, 0.6·0.5/0.8, 0.2·0.5/0.8).
    plain = torch.tensor([[math.log(2.0), 0.0, 0.0]])
    tde = torch.tensor([[0.0, math.log(3.0), 0.0]])
    scores = background_exempted_scores(plain, tde)
    assert scores.tolist()[0] == pytest.approx([0.5, 0.375, 0.125])


def test_alpha_zero_is_plain_deconfounded_inference_and_the_background_is_kept() -> None:
    torch.manual_seed(0)
    method = _tde()
    classifier = method.build_box_classifier()
    assert classifier.weight.shape == (4, 4)  # background and 3 categories
    method.on_roi_features(torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0]))
    features = torch.randn(5, 4)
    plain = torch.softmax(causal_norm_logits(features, classifier.weight), dim=1)
    with torch.no_grad():
        assert torch.allclose(method.roi_scores(classifier, features, alpha=0.0), plain, atol=1e-6)
        removed = method.roi_scores(classifier, features, alpha=1.5)
    assert torch.allclose(removed[:, 0], plain[:, 0]) and not torch.allclose(removed, plain)
    assert torch.allclose(removed.sum(dim=1), torch.ones(5))


def test_paper_alpha_on_lvis_is_one_and_a_half() -> None:
    method = METHODS.get("causal_tde")(
        MethodContext("lvis_v1", 3, (5, 50, 500), 4, 1, 1, 0.02, protocol="paper")
    )
    assert method.test_time_knobs() == {"alpha": (1.5,)}
