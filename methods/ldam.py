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
from lt_bench.protocol import Paper, PaperRecipe, Reported
from lt_bench.search_space import Option, Range

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


def reweighting_epoch(context: MethodContext, fraction: float | None = None) -> int:
    """The 0-based epoch where DRW switches its weights on: `fraction` of the epochs when given, else
    the first learning-rate milestone, or 160/200 of the epochs when the schedule has none."""
    if fraction is None and context.lr_milestones:
        return min(context.lr_milestones)
    return round(context.epochs * (DRW_FRACTION if fraction is None else fraction))


class NormalisedLinear(nn.Module):
    """Cosine logits ⟨x/‖x‖, w_j/‖w_j‖⟩, no bias; rows drawn uniform(−1, 1), then unit norm."""

    def __init__(self, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(F.normalize(torch.empty(num_classes, feature_dim).uniform_(-1, 1), dim=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(features, dim=1) @ F.normalize(self.weight, dim=1).t()


LDAM_DRW_PAPER = Paper(
    key="ldam_drw",
    citation="Cao, Wei, Gaidon, Arechiga & Ma, NeurIPS 2019",
    title="Learning Imbalanced Datasets with Label-Distribution-Aware Margin Loss",
    repository="kaidic/LDAM-DRW",
)
# cifar_train.py's defaults, shared by its CE, focal, LDAM and DRW runs: ResNet-32, 200 epochs, batch
# 128, SGD lr 0.1, momentum 0.9, wd 2e-4; adjust_learning_rate runs 1-based epoch k ≤ 5 at 0.1·k/5,
# k > 160 at ×0.01 and k > 180 at ×0.0001, i.e. from 0-based epochs 160 and 180. Its "Best Prec@1"
# is the best test accuracy over epochs (CIFAR has no validation split there).
_CIFAR_OVERRIDES = {
    "backbone": "resnet32_cifar",
    "epochs": 200,
    "batch_size": 128,
    "lr": 0.1,
    "weight_decay": 2e-4,
    "momentum": 0.9,
    "schedule": "multistep",
    "warmup_epochs": 5,
    "warmup_start": 0.0,
    "milestones": (160, 180),
    "lr_decay": 0.01,
    "select": "last",
}
_CIFAR_DEVIATIONS = (
    "The official script reports the best test accuracy over the 200 epochs; lt-bench tests the last "
    "epoch, as the test set may not choose it (the official numbers can be a little higher).",
    "The official loader keeps each epoch's last partial batch (97 steps on CIFAR-10-LT at ratio 100); "
    "lt-bench drops it (96 steps).",
)
LDAM_DRW_RECIPES = {
    dataset: PaperRecipe(
        source=f"{LDAM_DRW_PAPER.repository}: cifar_train.py",
        overrides=_CIFAR_OVERRIDES,
        deviations=_CIFAR_DEVIATIONS,
    )
    for dataset in ("cifar10_lt", "cifar100_lt")
}


@METHODS.register("ldam")
class LDAM(Method):
    """LDAM loss (max margin 0.5, s = 30) on a normalised linear head."""

    description = "label-distribution-aware margin loss on a cosine head (Cao et al., NeurIPS 2019)"
    paper = LDAM_DRW_PAPER
    paper_recipes = LDAM_DRW_RECIPES
    options = {
        "max_margin": Option(MAX_MARGIN, Range(0.05, 1.0, log=True), "C: the rarest class's margin"),
        "scale": Option(SCALE, Range(1.0, 64.0, log=True), "s, the cosine logits' scale"),
    }

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_weights: torch.Tensor | None = None

    def build_head(self) -> nn.Module:
        return NormalisedLinear(self.context.feature_dim, self.context.num_classes)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = None if self.class_weights is None else self.class_weights.to(logits)
        return ldam_loss(
            logits,
            targets,
            self.context.class_counts,
            max_margin=self.option("max_margin"),
            scale=self.option("scale"),
            weight=weight,
        )

    def inference_logits(self, head: nn.Module, features: torch.Tensor, **knobs: float) -> torch.Tensor:
        # s·cos: the official cosine output's argmax, and the softmax the loss trained (NLL, ECE).
        return self.option("scale") * head(features)


@METHODS.register("ldam_drw")
class LDAMDRW(LDAM):
    """LDAM with deferred re-weighting: class-balanced weights (β = 0.9999) from the LR drop on."""

    description = "LDAM + deferred class-balanced re-weighting at the LR drop (Cao et al., NeurIPS 2019)"
    uses_milestones = True  # the re-weighting starts at the first milestone (`reweighting_epoch`)
    # Table 2, top-1 test error of ResNet-32 on the long-tailed CIFARs, as accuracy = 100 − error.
    reported = (
        Reported("cifar10_lt", 100, 77.03, backbone="ResNet-32", table="Table 2"),  # error 22.97
        Reported("cifar10_lt", 10, 88.16, backbone="ResNet-32", table="Table 2"),  # error 11.84
        Reported("cifar100_lt", 100, 42.04, backbone="ResNet-32", table="Table 2"),  # error 57.96
        Reported("cifar100_lt", 10, 58.71, backbone="ResNet-32", table="Table 2"),  # error 41.29
    )

    options = {
        **LDAM.options,
        # The default is the recipe's first milestone (or 160/200 of the epochs): given, a fraction.
        "drw_start": Option(DRW_FRACTION, Range(0.3, 0.95), "fraction of the epochs before re-weighting"),
    }

    def on_epoch_start(self, epoch: int, lr: float) -> None:
        fraction = self.context.method_options.get("drw_start")
        reweight = epoch >= reweighting_epoch(self.context, fraction)
        self.class_weights = effective_number_weights(self.context.class_counts) if reweight else None
