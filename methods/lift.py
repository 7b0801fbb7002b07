"""LIFT: lightweight fine-tuning of a foundation model for long-tail learning.

Shi, Wei, Zhou, Shao, Han & Li, "Long-Tail Learning with Foundation Model: Heavy Fine-Tuning Hurts",
ICML 2024 (official: shijxcs/LIFT). A frozen pretrained ViT with AdaptFormer adapters (lt-bench:
`--finetune peft`), a cosine classifier s·⟨x/‖x‖, w_j/‖w_j‖⟩ with s = 25 (utils/config.py `scale`),
trained with the logit-adjusted loss CE(z + log π, y) (utils/losses.py `LogitAdjustedLoss`), its
weights initialised before training from the normalised class means of the training features
(trainer.py `init_head_class_mean`). The paper's default head comes from CLIP's text embeddings of the
class names, and it averages five test crops; lt-bench has neither (no text encoder, and inference
sees one view per image), so the record's `head_init` says "class means".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.methods.ldam import NormalisedLinear
from lt_bench.methods.logit_adjustment import class_priors, logit_adjusted_loss

COSINE_SCALE = 25.0  # utils/config.py: _C.scale, the CosineClassifier's s


class ScaledCosineHead(NormalisedLinear):
    """s·cos(x, w_j): LIFT's CosineClassifier (rows drawn uniform(−1, 1) then unit norm, no bias)."""

    def __init__(self, feature_dim: int, num_classes: int, scale: float = COSINE_SCALE) -> None:
        super().__init__(feature_dim, num_classes)
        self.scale = scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features) * self.scale


def class_mean_directions(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Row j: the unit-norm mean of class j's features (zero for a class without features)."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_classes).clamp(min=1).unsqueeze(1).to(features)
    return F.normalize(sums / counts, dim=1)


@METHODS.register("lift")
class LIFT(Method):
    """Cosine head from class-mean features, logit-adjusted loss; adapters via `--finetune peft`."""

    description = (
        "LIFT: cosine head (s = 25) from class-mean features, logit-adjusted loss; pair with "
        "--finetune peft on a pretrained ViT (Shi et al., ICML 2024)"
    )
    head_from_features = True

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_priors = class_priors(context.class_counts)  # refuses empty classes up front

    def build_head(self) -> nn.Module:
        return ScaledCosineHead(self.context.feature_dim, self.context.num_classes)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logit_adjusted_loss(logits, targets, self.class_priors)

    @torch.no_grad()
    def initialise_head(self, head: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> str:
        head.weight.copy_(class_mean_directions(features, labels, self.context.num_classes))
        return "class means"
