"""Seesaw loss: mitigation and compensation factors on the softmax's negative terms.

Wang et al., "Seesaw Loss for Long-Tailed Instance Segmentation", CVPR 2021 (Eq. 2–5); official code:
mmdetection `mmdet/models/losses/seesaw_loss.py` (p = 0.8, q = 2, ε = 0.01, with the objectness branch
of `use_sigmoid=False`, `num_classes + 2` outputs). For a sample of class i the logit of each other
class j is shifted by log S_ij, S_ij = M_ij·C_ij: M_ij = (N_j / N_i)^p where N_j < N_i (N the instances
seen so far, accumulated during training), C_ij = (σ_j / σ_i)^q where σ_j > σ_i (σ the detached softmax).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.method import METHODS, Method, MethodContext

P, Q, EPSILON = 0.8, 2.0, 1e-2


def seesaw_logits(
    logits: torch.Tensor,
    targets: torch.Tensor,
    seen: torch.Tensor,
    p: float = P,
    q: float = Q,
    eps: float = EPSILON,
) -> torch.Tensor:
    """z_j + log S_ij for every j ≠ i (Eq. 2): logits [N, C], targets [N] (0-based), seen [C] counts."""
    counts = seen.to(logits).clamp_min(1.0)
    ratio = counts[None, :] / counts[:, None]  # [i, j] = N_j / N_i
    mitigation = torch.where(ratio < 1.0, ratio.pow(p), torch.ones_like(ratio))[targets]
    probabilities = F.softmax(logits.detach(), dim=1)
    own = probabilities.gather(1, targets[:, None]).clamp_min(eps)
    score_ratio = probabilities / own
    compensation = torch.where(score_ratio > 1.0, score_ratio.pow(q), torch.ones_like(score_ratio))
    others = 1.0 - F.one_hot(targets, logits.shape[1]).to(logits)
    return logits + torch.log(mitigation * compensation) * others


@METHODS.register("seesaw")
class Seesaw(Method):
    """Seesaw loss (p = 0.8, q = 2) with instance counts accumulated during training; detection adds
    mmdetection's objectness branch."""

    description = "seesaw loss, p = 0.8, q = 2 (Wang et al., CVPR 2021)"
    supports_instance_segmentation = True

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.seen = torch.zeros(context.num_classes, dtype=torch.float64)

    def _seesaw(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Summed seesaw cross-entropy; counts this batch's targets first, as mmdetection does."""
        self.seen += torch.bincount(targets.cpu(), minlength=len(self.seen)).double()
        return F.cross_entropy(seesaw_logits(logits, targets, self.seen), targets, reduction="sum")

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._seesaw(logits, targets) / len(targets)

    def build_box_classifier(self) -> nn.Module:
        """C category logits, then 2 objectness logits (foreground, background)."""
        return nn.Linear(self.context.feature_dim, self.context.num_classes + 2)

    def roi_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Seesaw CE over the foreground RoIs' categories plus objectness CE over all, both / RoIs."""
        foreground = labels > 0
        objectness = F.cross_entropy(logits[:, -2:], (~foreground).long(), reduction="sum")
        categories = logits[foreground, :-2]
        seesaw = self._seesaw(categories, labels[foreground] - 1) if len(categories) else logits.sum() * 0
        return (seesaw + objectness) / len(labels)

    def roi_scores(self, classifier: nn.Module, features: torch.Tensor, **knobs: float) -> torch.Tensor:
        """[P(background), P(foreground)·softmax over the categories] (mmdetection's `get_activation`)."""
        logits = classifier(features)
        objectness = F.softmax(logits[:, -2:], dim=1)
        categories = F.softmax(logits[:, :-2], dim=1) * objectness[:, :1]
        return torch.cat([objectness[:, 1:], categories], dim=1)

    def state_dict(self) -> dict[str, Any]:
        return {"seen": self.seen.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.seen = state["seen"].clone()
