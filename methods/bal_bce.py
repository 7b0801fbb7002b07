"""Balanced binary cross-entropy (Bal-BCE) of LiVT.

Xu, Liu, Yang, Chai & Yuan, "Learning Imbalanced Data with Vision Transformers", CVPR 2023 (official
XuZhengzhuo/LiVT, util/loss.py `BCE_loss` with type 'Bal'): one sigmoid per class on the logits
shifted by the prior's log-odds, z_j + log π_j − log(1 − π_j), against label-smoothed one-hot
targets (ε = 0.1, off value ε/C, as their fine-tuning arguments), the mean binary cross-entropy
multiplied by the number of classes C. Predicts with the raw logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.methods.logit_adjustment import class_priors

SMOOTHING = 0.1  # exp/finetune/*/args.txt: smoothing 0.1


def smoothed_one_hot(targets: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """One-hot targets with ε/C off the class and 1 − ε + ε/C on it (timm's label smoothing)."""
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    one_hot = torch.full((len(targets), num_classes), off, device=targets.device)
    return one_hot.scatter_(1, targets.view(-1, 1), on)


def balanced_bce_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_priors: Sequence[float] | torch.Tensor,
    smoothing: float = SMOOTHING,
) -> torch.Tensor:
    """C · mean_{i,j} BCE(σ(z_ij + log π_j − log(1 − π_j)), ỹ_ij), ỹ the smoothed one-hot targets."""
    priors = torch.as_tensor(class_priors, dtype=torch.float64)
    log_odds = (priors.log() - (1.0 - priors).log()).to(logits)
    soft_targets = smoothed_one_hot(targets, logits.shape[1], smoothing).to(logits)
    return logits.shape[1] * F.binary_cross_entropy_with_logits(logits + log_odds, soft_targets)


@METHODS.register("bal_bce")
class BalancedBinaryCrossEntropy(Method):
    """Bal-BCE on a linear head, instance-balanced sampling; predicts with the raw logits.

    Beyond the shared recipe LiVT fine-tunes an MAE-pretrained ViT with AdamW, layer decay, mixup and
    CutMix; those are its training recipe, not the loss, and are not part of this method."""

    description = "balanced binary cross-entropy with log-odds prior shift (Xu et al., CVPR 2023)"

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_priors = class_priors(context.class_counts)  # refuses empty classes up front

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return balanced_bce_loss(logits, targets, self.class_priors)
