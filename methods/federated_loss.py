"""Federated loss: sigmoid cross-entropy on the categories an image is judged on.

Zhou, Koltun & Krähenbühl, "Probabilistic two-stage detection", arXiv 2103.07461 (2021), the LVIS loss
of CenterNet2; official code: Detectron2 `detectron2/modeling/roi_heads/fast_rcnn.py`
(`use_fed_loss`: `get_fed_loss_cls_weights`, `get_fed_loss_classes`, `sigmoid_cross_entropy_loss`).
Each step, binary cross-entropy runs over the categories present among the sampled RoIs plus
categories drawn with probability ∝ (training images)^0.5 up to 50 in all; the background logit is not
trained and scores are per-category sigmoids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.method import METHODS, Method, MethodContext

NUM_FEDERATED_CLASSES = 50  # Detectron2 MODEL.ROI_BOX_HEAD.FED_LOSS_NUM_CLASSES
FREQUENCY_WEIGHT_POWER = 0.5  # Detectron2 MODEL.ROI_BOX_HEAD.FED_LOSS_FREQ_WEIGHT_POWER


def federated_classes(
    targets: torch.Tensor, class_weights: torch.Tensor, size: int, generator: torch.Generator
) -> torch.Tensor:
    """The categories of this step's loss (0-based): every target category (−1 = background is none),
    then draws without replacement ∝ `class_weights` among the others until `size` (or all C)."""
    present = torch.unique(targets[targets >= 0])
    missing = min(size, len(class_weights)) - len(present)
    if missing <= 0:
        return present
    weights = class_weights.double().clone()
    weights[present] = 0.0
    drawn = torch.multinomial(weights, missing, replacement=False, generator=generator)
    return torch.cat([present, drawn.to(present)])


def federated_bce(
    category_logits: torch.Tensor, targets: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """Σ over samples and the `classes` columns of BCE(logit, one-hot target), divided by the samples.

    category_logits [N, C] (no background column); targets [N], 0-based, −1 for background.
    """
    one_hot = torch.zeros_like(category_logits)
    foreground = targets >= 0
    one_hot[foreground, targets[foreground]] = 1.0
    loss = F.binary_cross_entropy_with_logits(category_logits, one_hot, reduction="none")
    return loss[:, classes].sum() / len(category_logits)


@METHODS.register("federated_loss")
class FederatedLoss(Method):
    """Sigmoid BCE over the present + 50 sampled categories (weights ∝ images^0.5), sigmoid scores."""

    description = "federated sigmoid loss over present + sampled categories (Zhou et al. 2021, CenterNet2)"
    supports_instance_segmentation = True

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        counts = torch.tensor(context.class_counts, dtype=torch.float64)
        self.class_weights = counts.pow(FREQUENCY_WEIGHT_POWER)
        self.generator = torch.Generator().manual_seed(0)  # its state is saved in state_dict

    def _loss(self, category_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        classes = federated_classes(targets, self.class_weights, NUM_FEDERATED_CLASSES, self.generator)
        return federated_bce(category_logits, targets, classes.to(category_logits.device))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._loss(logits, targets)

    def roi_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self._loss(logits[:, 1:], labels - 1)

    def roi_scores(self, classifier: nn.Module, features: torch.Tensor, **knobs: float) -> torch.Tensor:
        return torch.sigmoid(classifier(features))

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])
