"""Balanced contrastive learning (BCL): logit-adjusted CE on one view plus a class-averaged,
class-complemented supervised contrastive loss on two more views.

Zhu, Wang, Chen, Chen & Jiang, "Balanced Contrastive Learning for Long-Tailed Visual Recognition",
CVPR 2022 (official FlamieZhu/Balanced-Contrastive-Learning: loss/contrastive.py `BalSCL`,
loss/logitadjust.py, models/resnext.py `BCLModel`, main.py). The head is a cosine classifier
30·cos(x, w_j) (`use_norm`: models/resnext.py `NormedLinear`, s = 30), a projection MLP (Linear,
BatchNorm, ReLU, Linear to 1024) of the features and another of the classifier rows, whose
normalised outputs are the class prototypes. main.py's `train` loads three views of each image,
projects all three, and computes
α·CE(z + log π, y) on the first view's logits and β·L_BCL on the other two views' projections, with
α = 1, β = 0.35, temperature 0.07 (main.py defaults). L_BCL (Eq. 6): each anchor's positives are the
other view and the other images of its class and its class's prototype (class-complement: every
class is in every batch); in the denominator each other sample counts 1/|its class in the batch,
prototype included, less the anchor's own share| (class-averaging).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.methods.lift import ScaledCosineHead
from lt_bench.methods.logit_adjustment import class_priors, logit_adjusted_loss
from lt_bench.search_space import Option, Range

CE_WEIGHT = 1.0  # main.py --alpha
CONTRASTIVE_WEIGHT = 0.35  # main.py --beta
TEMPERATURE = 0.07  # main.py --temp
PROJECTION_DIM = 1024  # main.py --feat_dim
COSINE_SCALE = 30.0  # models/resnext.py NormedLinear.s


def balanced_contrastive_loss(
    projections: torch.Tensor,
    targets: torch.Tensor,
    prototypes: torch.Tensor,
    temperature: float = TEMPERATURE,
) -> torch.Tensor:
    """L_BCL of unit projections [V·B, P] (view after view) of images with `targets` [B] and unit class
    prototypes [C, P], averaged over the V·B anchors."""
    num_classes = len(prototypes)
    anchors = len(projections)
    anchor_labels = targets.repeat(anchors // len(targets))
    labels = torch.cat([anchor_labels, torch.arange(num_classes, device=targets.device)])
    class_count = torch.bincount(labels, minlength=num_classes).to(projections)
    others = torch.ones(anchors, len(labels), device=projections.device)
    others[:, :anchors].fill_diagonal_(0.0)  # an anchor is not its own positive or negative
    positives = (anchor_labels.unsqueeze(1) == labels.unsqueeze(0)).to(projections) * others
    logits = projections @ torch.cat([projections, prototypes]).t() / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    # Class-averaging: every other sample weighs 1 / (its class's count, less 1 in the anchor's class).
    weights = class_count[labels].unsqueeze(0) - positives
    denominator = (logits.exp() * others / weights).sum(dim=1, keepdim=True)
    log_probability = logits - denominator.log()
    return -((positives * log_probability).sum(dim=1) / positives.sum(dim=1)).mean()


def projection_mlp(feature_dim: int, projection_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(feature_dim, feature_dim),
        nn.BatchNorm1d(feature_dim),
        nn.ReLU(inplace=True),
        nn.Linear(feature_dim, projection_dim),
    )


class BalancedContrastiveHead(nn.Module):
    """The cosine classifier, the features' projection and the prototypes' projection of its rows."""

    def __init__(self, feature_dim: int, num_classes: int, projection_dim: int = PROJECTION_DIM) -> None:
        super().__init__()
        self.classifier = ScaledCosineHead(feature_dim, num_classes, scale=COSINE_SCALE)
        self.projection = projection_mlp(feature_dim, projection_dim)
        self.prototype_projection = projection_mlp(feature_dim, projection_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projection(features), dim=1)

    def prototypes(self) -> torch.Tensor:
        return F.normalize(self.prototype_projection(self.classifier.weight), dim=1)


@METHODS.register("bcl")
class BalancedContrastiveLearning(Method):
    """Logit-adjusted CE on the first view plus β·L_BCL on the second and third; predicts with the
    cosine logits.

    Beyond the shared recipe: three augmented views per image (three times the forward passes), as the
    official code. Deviation: the official views are RandAugment (CE) and two SimCLR-style views
    (contrastive); here every view is a draw of the dataset's own augmentation."""

    description = "balanced contrastive learning + logit-adjusted CE on three views (Zhu et al., CVPR 2022)"
    views = 3
    options = {
        "contrastive_weight": Option(CONTRASTIVE_WEIGHT, Range(0.0, 2.0), "λ (main.py --beta) of L_BCL"),
        "temperature": Option(TEMPERATURE, Range(0.03, 0.5, log=True), "the contrastive temperature"),
    }

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_priors = class_priors(context.class_counts)  # refuses empty classes up front
        self.head: BalancedContrastiveHead | None = None

    def build_head(self) -> nn.Module:
        self.head = BalancedContrastiveHead(self.context.feature_dim, self.context.num_classes)
        return self.head

    def loss_with_features(
        self, logits: torch.Tensor, features: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        cross_entropy = logit_adjusted_loss(logits[: len(targets)], targets, self.class_priors)
        projections = self.head.project(features)[len(targets) :]  # every view through the MLP's BatchNorm
        contrastive = balanced_contrastive_loss(
            projections, targets, self.head.prototypes(), temperature=self.option("temperature")
        )
        return CE_WEIGHT * cross_entropy + self.option("contrastive_weight") * contrastive
