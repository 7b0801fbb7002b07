"""Class-balanced loss: cross-entropy re-weighted by the inverse effective number of samples.

Cui et al., "Class-Balanced Loss Based on Effective Number of Samples", CVPR 2019: the effective
number of class j is E_j = (1 − β^{n_j}) / (1 − β) (Eq. 3), its weight w_j ∝ 1/E_j, scaled so that
Σ_j w_j = C (Eq. 5 and the normalisation of the LDAM-DRW code's Reweight rule, β = 0.9999).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.search_space import Option, Range

BETA = 0.9999  # the β of the LDAM-DRW Reweight and DRW rules


def effective_number_weights(class_counts: Sequence[int], beta: float = BETA) -> torch.Tensor:
    """w_j ∝ (1 − β)/(1 − β^{n_j}), scaled to sum to the number of classes; float32 [C].

    A class without training images is never a target, so its weight is never read: it gets 0 and
    the seen classes alone are scaled to sum to C (identical to the paper when every class is seen).
    """
    counts = torch.as_tensor(class_counts, dtype=torch.float64)
    seen = counts > 0
    effective = (1.0 - torch.pow(beta, counts)) / (1.0 - beta) if beta < 1 else counts
    weights = torch.where(seen, 1.0 / torch.where(seen, effective, torch.ones_like(effective)), 0.0)
    return (weights * len(counts) / weights.sum()).float()


@METHODS.register("class_balanced")
class ClassBalanced(Method):
    """Cross-entropy with class-balanced weights (β = 0.9999) from the first epoch."""

    description = "CE re-weighted by effective numbers, beta = 0.9999 (Cui et al., CVPR 2019)"
    # Cui et al. tried β ∈ {0.9, 0.99, 0.999, 0.9999} (Table 2); the range spans their values and beyond.
    options = {"beta": Option(BETA, Range(0.9, 0.99999), "β of the effective number (1 − β^n)/(1 − β)")}

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_weights = effective_number_weights(context.class_counts, self.option("beta"))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # PyTorch's weighted mean Σ w_{y_i}·CE_i / Σ w_{y_i}, as the official code's weighted CE.
        return F.cross_entropy(logits, targets, weight=self.class_weights.to(logits))
