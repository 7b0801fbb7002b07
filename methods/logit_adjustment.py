"""Logit adjustment: the loss form and the post-hoc form.

Menon et al., "Long-Tail Learning via Logit Adjustment", ICLR 2021. Loss (Eq. 10):
CE(z + τ·log π, y), predicting with the raw z. Post-hoc (Eq. 9): argmax_j z_j − τ·log π_j on a
CE-trained model. π_j is the training frequency of class j; τ = 1 by default (official main.py).
The official code adds 1e-12 inside the log; here a class without training images is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.errors import UserError
from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.methods.decoupling import SecondStageOfCE

TAU = 1.0
POSTHOC_TAU_GRID = tuple(step * 0.25 for step in range(9))  # 0.0, 0.25, …, 2.0; 0 is CE, 1 the paper's


def log_class_priors(class_priors: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """log π_j (float32); a UserError names the classes whose prior is 0 (log 0 = −∞).

    Takes frequencies or counts alike: both give the same adjusted softmax up to a constant.
    """
    return _refuse_empty_classes(class_priors).log().float()


def class_priors(class_counts: Sequence[int]) -> torch.Tensor:
    """π_j = n_j / Σ_k n_k, ordered by class index; a class without images is a UserError."""
    counts = _refuse_empty_classes(class_counts)
    return counts / counts.sum()


def _refuse_empty_classes(values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """`values` as float64, or a UserError naming the fix when a class has none."""
    values = torch.as_tensor(values, dtype=torch.float64)
    empty = (values <= 0).nonzero().flatten().tolist()
    if empty:
        raise UserError(
            f"class(es) {', '.join(map(str, empty))} have no training images (log prior -inf): "
            "lower --imbalance-ratio so every class keeps an image, or use a method without a "
            "log prior (e.g. ce)"
        )
    return values


def logit_adjusted_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_priors: Sequence[float] | torch.Tensor,
    tau: float = TAU,
) -> torch.Tensor:
    """mean_i CE(z_i + τ·log π, y_i)."""
    return F.cross_entropy(logits + tau * log_class_priors(class_priors).to(logits), targets)


def posthoc_logit_adjustment(
    logits: torch.Tensor, class_priors: Sequence[float] | torch.Tensor, tau: float = TAU
) -> torch.Tensor:
    """z − τ·log π."""
    return logits - tau * log_class_priors(class_priors).to(logits)


@METHODS.register("logit_adjustment")
class LogitAdjustedLoss(Method):
    """Logit-adjusted cross-entropy (τ = 1) on a linear head; predicts with the raw logits."""

    description = "logit-adjusted loss, tau = 1 (Menon et al., ICLR 2021)"

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_priors = class_priors(context.class_counts)  # refuses empty classes up front

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logit_adjusted_loss(logits, targets, self.class_priors, TAU)


@METHODS.register("logit_adjustment_posthoc")
class PostHocLogitAdjustment(SecondStageOfCE):
    """Post-hoc logit adjustment of the CE model, τ chosen on validation over 0…2."""

    description = "post-hoc logit adjustment of CE, tau chosen on val (Menon et al., ICLR 2021)"
    test_time_knob_ranges = {"tau": (0.0, math.inf)}

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_priors = class_priors(context.class_counts)  # refuses empty classes up front

    def test_time_knobs(self) -> dict[str, tuple[float, ...]]:
        return {"tau": POSTHOC_TAU_GRID}

    def inference_logits(self, head: nn.Module, features: torch.Tensor, **knobs: float) -> torch.Tensor:
        return posthoc_logit_adjustment(head(features), self.class_priors, knobs["tau"])
