"""The causal TDE math against values computed by hand (Tang et al. 2020, Eq. 7–8)."""

from dataclasses import replace

import pytest
import torch

from lt_bench.method import METHODS, MethodContext
from lt_bench.methods.causal_tde import (
    causal_norm_logits,
    lr_scaled_momentum,
    tde_logits,
    update_moving_average,
)

# D = 4 split into K = 2 heads; τ = 16 so each head is scaled by τ/K = 8; γ = 1/32.
FEATURES = torch.tensor([[3.0, 4.0, 0.0, 2.0]])  # heads: [3,4] → [0.6, 0.8]; [0,2] → [0, 1]
WEIGHT = torch.tensor(
    [
        [1.0, 0.0, 0.0, 1.0],  # heads [1,0], [0,1]: norms 1 → divided by 1 + 1/32 = 33/32
        [0.0, 2.0, 1.0, 0.0],  # heads [0,2] (norm 2 → / 65/32), [1,0] (→ / 33/32)
    ]
)


def test_causal_norm_logits_by_hand():
    # class 0: 8·(0.6·32/33 + 1·32/33) = 409.6/33; class 1: 8·(0.8·64/65 + 0) = 409.6/65
    expected = torch.tensor([[409.6 / 33, 409.6 / 65]])
    assert torch.allclose(causal_norm_logits(FEATURES, WEIGHT), expected, atol=1e-5)


def test_all_zero_feature_chunk_contributes_nothing_instead_of_nan():
    features = torch.tensor([[0.0, 0.0, 0.0, 2.0]])  # first head all zero (possible after ReLU)
    logits = causal_norm_logits(features, WEIGHT)
    assert torch.isfinite(logits).all()
    # only the second head counts: class 0 → 8·32/33, class 1 → 0
    assert torch.allclose(logits, torch.tensor([[256 / 33, 0.0]]), atol=1e-5)


def test_tde_removes_the_projection_on_the_moving_average():
    moving_average = torch.tensor([5.0, 0.0, 0.0, 0.5])  # per-head directions [1,0] and [0,1]
    # cos per head: 0.6 and 1; with α = 1 the direct parts are [0, 0.8] and [0, 0]
    # class 0: 8·(⟨[0,0.8],[32/33,0]⟩ + 0) = 0; class 1: 8·⟨[0,0.8],[0,64/65]⟩ = 409.6/65
    logits = tde_logits(FEATURES, WEIGHT, moving_average, alpha=1.0)
    assert torch.allclose(logits, torch.tensor([[0.0, 409.6 / 65]]), atol=1e-5)
    # α = 2 over-subtracts: head 1 becomes [-0.6, 0.8], head 2 [0, -1]
    # class 0: 8·(−0.6·32/33 − 1·32/33) = −409.6/33; class 1: 8·(0.8·64/65) = 409.6/65
    logits = tde_logits(FEATURES, WEIGHT, moving_average, alpha=2.0)
    assert torch.allclose(logits, torch.tensor([[-409.6 / 33, 409.6 / 65]]), atol=1e-5)


def test_alpha_zero_is_the_deconfounded_classifier():
    moving_average = torch.tensor([1.0, 2.0, 3.0, 4.0])
    features = torch.rand(5, 4)
    weight = torch.randn(3, 4)
    assert torch.allclose(
        tde_logits(features, weight, moving_average, alpha=0.0), causal_norm_logits(features, weight)
    )


def test_zero_moving_average_leaves_logits_unchanged():
    logits = tde_logits(FEATURES, WEIGHT, torch.zeros(4), alpha=3.0)
    assert torch.allclose(logits, causal_norm_logits(FEATURES, WEIGHT))


def test_moving_average_update_adds_the_raw_batch_mean():
    # 0.9·[1, 2] + mean([1,1],[3,5]) = [0.9 + 2, 1.8 + 3]
    updated = update_moving_average(torch.tensor([1.0, 2.0]), torch.tensor([[1.0, 1.0], [3.0, 5.0]]))
    assert torch.allclose(updated, torch.tensor([2.9, 4.8]))
    assert torch.allclose(
        update_moving_average(torch.tensor([1.0, 2.0]), torch.tensor([[1.0, 1.0]]), momentum=0.5),
        torch.tensor([1.5, 2.0]),
    )


@pytest.mark.parametrize("lr, momentum", [(0.2, 0.9), (0.02, 0.9), (0.001, 0.995), (0.0, 1.0)])
def test_lr_scaled_momentum(lr, momentum):
    # μ = 1 − 0.1·min(50·lr, 1)
    assert lr_scaled_momentum(lr) == pytest.approx(momentum)


def _context(dataset: str) -> MethodContext:
    return MethodContext(
        dataset=dataset,
        num_classes=3,
        class_counts=(50, 10, 2),
        feature_dim=4,
        epochs=2,
        steps_per_epoch=1,
        base_lr=0.1,
    )


def test_method_tracks_features_and_keeps_state_through_a_checkpoint():
    method = METHODS.get("causal_tde")(_context("mnist_lt"))
    method.on_train_features(torch.tensor([[1.0, 0.0, 2.0, 0.0], [3.0, 0.0, 0.0, 2.0]]))
    method.on_train_features(torch.tensor([[0.0, 2.0, 0.0, 0.0]]))
    # e = 0.9·[2, 0, 1, 1] + [0, 2, 0, 0]
    assert torch.allclose(method.moving_average, torch.tensor([1.8, 2.0, 0.9, 0.9]))
    restored = METHODS.get("causal_tde")(_context("mnist_lt"))
    restored.load_state_dict(method.state_dict())
    assert torch.equal(restored.moving_average, method.moving_average)


def test_alpha_is_the_papers_under_the_paper_protocol_and_searched_under_shared():
    def knobs(dataset: str, protocol: str, method: str = "causal_tde") -> dict:
        return METHODS.get(method)(replace(_context(dataset), protocol=protocol)).test_time_knobs()

    assert knobs("imagenet_lt", "paper") == {"alpha": (3.0,)}
    assert knobs("places_lt", "paper") == {"alpha": (3.0,)}
    assert knobs("cifar10_lt", "paper") == {"alpha": (1.0,)}
    assert knobs("cifar100_lt", "paper") == {"alpha": (1.5,)}
    for dataset in ("imagenet_lt", "cifar10_lt", "mnist_lt"):
        grid = knobs(dataset, "shared")["alpha"]
        assert len(grid) > 5 and min(grid) == 0.0 and max(grid) == 3.0
    assert knobs("mnist_lt", "shared", "deconfound") == {"alpha": (0.0,)}
    assert knobs("cifar10_lt", "paper", "deconfound") == {"alpha": (0.0,)}


def test_momentum_follows_the_learning_rate_only_on_imagenet_and_places():
    imagenet = METHODS.get("causal_tde")(_context("imagenet_lt"))
    imagenet.on_epoch_start(89, 0.001)
    assert imagenet.momentum == pytest.approx(0.995)
    cifar = METHODS.get("causal_tde")(_context("cifar10_lt"))
    cifar.on_epoch_start(199, 0.001)
    assert cifar.momentum == 0.9
