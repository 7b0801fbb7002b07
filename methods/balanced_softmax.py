"""Balanced Softmax: cross-entropy on logits shifted by the log class counts.

Ren et al., "Balanced Meta-Softmax for Long-Tailed Visual Recognition", NeurIPS 2020, Eq. 4:
L = CE(z + log n, y) with n the training count per class; inference uses the raw logits. It is
logit adjustment's loss with τ = 1 (log n and log π differ by a constant), so it shares that
module's guarded log.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.methods.logit_adjustment import log_class_priors


def balanced_softmax_loss(
    logits: torch.Tensor, targets: torch.Tensor, class_counts: Sequence[int]
) -> torch.Tensor:
    """mean_i CE(z_i + log n, y_i); a class with n_j = 0 is a UserError."""
    return F.cross_entropy(logits + log_class_priors(class_counts).to(logits), targets)


@METHODS.register("balanced_softmax")
class BalancedSoftmax(Method):
    """Balanced Softmax loss on a linear head; predicts with the raw logits."""

    description = "balanced softmax: CE on logits + log class counts (Ren et al., NeurIPS 2020)"

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        log_class_priors(context.class_counts)  # refuse empty classes before training starts

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return balanced_softmax_loss(logits, targets, self.context.class_counts)
