"""LDAM loss and deferred re-weighting (LDAM-DRW).

Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss", NeurIPS 2019.
Margins m_j = K / n_j^{1/4} with K set so the largest margin is `max_margin` (Eq. 13); the loss is
CE(s·(z − m_y·e_y), y) on cosine logits of a normalised linear head, s = 30 (official losses.py).
DRW (Algorithm 1) trains with uniform weights, then switches on the class-balanced weights of
Cui et al. (β = 0.9999) at the epoch where the learning rate drops (160 of 200 on CIFAR).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.methods.class_balanced import effective_number_weights

MAX_MARGIN = 0.5  # the official default, on the rarest class
SCALE = 30.0  # s of the official code
DRW_FRACTION = 160 / 200  # the CIFAR recipe's re-weighting epoch, for schedules without milestones


def ldam_margins(class_counts: Sequence[int], max_margin: float = MAX_MARGIN) -> torch.Tensor:
    """m_j ∝ n_j^{−1/4}, the largest (rarest class) equal to `max_margin`; float32 [C].

    A class without training images is never a target, so its margin is never used: it gets 0.
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    seen = counts > 0
    inverse_root = torch.where(seen, counts.clamp(min=1).pow(-0.25), 0.0)
    return (inverse_root * (max_margin / inverse_root.max())).float()


def ldam_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_counts: Sequence[int],
    *,
    max_margin: float = MAX_MARGIN,
    scale: float = SCALE,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """CE(s·(z − m_y·e_y), y): the true-class margin subtracted, then scaled by s."""
    margins = ldam_margins(class_counts, max_margin).to(logits)
    adjusted = logits - F.one_hot(targets, logits.shape[1]).to(logits) * margins[targets, None]
    return F.cross_entropy(scale * adjusted, targets, weight=weight)


def reweighting_epoch(context: MethodContext) -> int:
    """The 0-based epoch where DRW switches its weights on: the first learning-rate milestone, or
    160/200 of the epochs when the schedule has none."""
    if context.lr_milestones:
        return min(context.lr_milestones)
    return round(context.epochs * DRW_FRACTION)


class NormalisedLinear(nn.Module):
    """Cosine logits ⟨x/‖x‖, w_j/‖w_j‖⟩, no bias; rows drawn uniform(−1, 1), then unit norm."""

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(F.normalize(torch.empty(num_classes, feature_dim).uniform_(-1, 1), dim=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features, dim=1) @ F.normalize(self.weight, dim=1).t()


@METHODS.register("ldam")
class LDAM(Method):
    """LDAM loss (max margin 0.5, s = 30) on a normalised linear head."""

    description = "label-distribution-aware margin loss on a cosine head (Cao et al., NeurIPS 2019)"

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_weights: torch.Tensor | None = None

    def build_head(self) -> nn.Module:
        return NormalisedLinear(self.context.feature_dim, self.context.num_classes)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None if self.class_weights is None else self.class_weights.to(logits)
        return ldam_loss(logits, targets, self.context.class_counts, weight=weight)

    def inference_logits(self, head: nn.Module, features: torch.Tensor, **knobs: float) -> torch.Tensor:
        # s·cos: the official cosine output's argmax, and the softmax the loss trained (NLL, ECE).
        return SCALE * head(features)


@METHODS.register("ldam_drw")
class LDAMDRW(LDAM):
    """LDAM with deferred re-weighting: class-balanced weights (β = 0.9999) from the LR drop on."""

    description = "LDAM + deferred class-balanced re-weighting at the LR drop (Cao et al., NeurIPS 2019)"

    def on_epoch_start(self, epoch: int, lr: float) -> None:
        reweight = epoch >= reweighting_epoch(self.context)
        self.class_weights = effective_number_weights(self.context.class_counts) if reweight else None
