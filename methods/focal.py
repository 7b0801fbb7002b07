"""Focal loss, the multi-class softmax form used in long-tail work.

Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017, Eq. 4 FL(p) = −(1 − p)^γ·log p,
in the softmax form of Cao et al.'s LDAM-DRW code (losses.py): per-sample ℓ_i = CE_i
(optionally class weighted), p_i = exp(−ℓ_i), loss = mean_i (1 − p_i)^γ·ℓ_i. No α term, plain
mean; γ = 1 as in the LDAM-DRW CIFAR experiments. Not torchvision's one-vs-all sigmoid focal loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lt_bench.method import METHODS, Method
from lt_bench.methods.ldam import LDAM_DRW_PAPER, LDAM_DRW_RECIPES
from lt_bench.search_space import Option, Range

GAMMA = 1.0  # LDAM-DRW cifar_train.py uses γ = 1 for its focal baseline


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma: float = GAMMA,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """mean_i (1 − p_i)^γ·ℓ_i with ℓ_i the (class-weighted) per-sample CE and p_i = exp(−ℓ_i).

    With `weight`, ℓ_i = w_{y_i}·CE_i and the reduction stays a plain mean, as in the official code.
    """
    per_sample = F.cross_entropy(logits, targets, weight=weight, reduction="none")
    return ((1.0 - torch.exp(-per_sample)) ** gamma * per_sample).mean()


@METHODS.register("focal")
class Focal(Method):
    """Softmax focal loss (γ = 1) on a linear head, instance-balanced sampling."""

    description = "softmax focal loss, gamma = 1 (Lin et al., ICCV 2017; long-tail form of Cao et al. 2019)"
    # The "Focal" baseline of Cao et al. (cifar_train.py --loss_type Focal), trained on their recipe.
    paper = LDAM_DRW_PAPER
    paper_recipes = LDAM_DRW_RECIPES
    options = {"gamma": Option(GAMMA, Range(0.0, 5.0), "the focusing exponent γ (Lin et al. tried 0–5)")}

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, targets, self.option("gamma"))
