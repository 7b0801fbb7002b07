"""Multi-expert heads: several classifiers on the same backbone features, their logits stacked.

A method whose head is an `ExpertHeads` receives logits [batch, experts, classes] in `loss` and
combines them into one prediction in `combine_experts` (see `lt_bench.method`, hook (i)).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ExpertHeads(nn.Module):
    """Expert e's logits `scale · heads[e](features)`, stacked as [batch, experts, classes]."""

    def __init__(self, heads: Sequence[nn.Module], scale: float = 1.0) -> None:
        super().__init__()
        self.experts = nn.ModuleList(heads)
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.stack([expert(features) for expert in self.experts], dim=1)


def weighted_experts(expert_logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_e w_e · z_e: [batch, experts, classes] logits and [experts] weights → [batch, classes]."""
    return torch.einsum("bec,e->bc", expert_logits, weights.to(expert_logits))
