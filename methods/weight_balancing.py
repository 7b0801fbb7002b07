"""Weight balancing: tuned weight decay, then a class-balanced classifier stage under MaxNorm.

Alshammari, Wang, Ramanan & Kong, "Long-Tailed Recognition via Weight Balancing", CVPR 2022
(official ShadeAlsha/LTR-weight-balancing). Stage 1 (demo1_first-stage-training.py) is CE with a
weight decay tuned by grid search, 5e-3 on every parameter. Stage 2
(demo2_second-stage-training.py) trains only the classifier (weight and bias) of the stage-1 model
on its own schedule, 10 epochs of SGD at lr 0.01 for batch 64, momentum 0.9, weight decay 0.1,
cosine to 0, whatever stage 1's length, with the class-balanced loss (β = 0.9999, the "softmax" form
of utils/class_balanced_loss.py), projecting the classifier rows at the end of each epoch's training
(utils/trainval.py calls `pgdFunc.PGD` once per training phase) onto the ball of radius
min‖w‖ + 0.1·(max‖w‖ − min‖w‖), the norms taken once from the stage-1 classifier (utils/regularizers.py
`MaxNorm_via_PGD`, thresh 0.1; the bias is never projected).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.method import METHODS, Method, MethodContext, SecondStage
from lt_bench.methods.class_balanced import effective_number_weights
from lt_bench.methods.decoupling import freeze
from lt_bench.search_space import SHARED_SEARCH_SPACE, Option, Range, option_ranges

STAGE_ONE_WEIGHT_DECAY = 5e-3  # demo1: "We found the value for the weight decay parameter using Grid Search"
MAX_NORM_THRESHOLD = 0.1  # demo2: thresh = 0.1
# demo2: total_epoch_num = 10, base_lr = 0.01 at batch_size = 64, weight_decay = 0.1, CosineAnnealingLR
STAGE_TWO = SecondStage(epochs=10, lr=0.01, batch_size_for_lr=64, weight_decay=0.1, schedule="cosine")
# The weight decays replace the recipe's, so they, not the shared weight decay, are searched: stage 1's
# as an option of ce_weight_decay, stage 2's (and its lr) as the run's --second-stage-* values.
STAGE_ONE_OPTIONS = {
    "stage_one_weight_decay": Option(STAGE_ONE_WEIGHT_DECAY, Range(1e-5, 1e-1, log=True), "stage 1's decay"),
}
STAGE_TWO_SPACE = {
    "second_stage_weight_decay": Range(1e-4, 1.0, log=True),
    "second_stage_lr": Range(1e-3, 1e-1, log=True),
}


def max_norm_radius(weight: torch.Tensor, threshold: float = MAX_NORM_THRESHOLD) -> float:
    """min_j ‖w_j‖ + threshold·(max_j ‖w_j‖ − min_j ‖w_j‖) over the class rows of `weight` [C, D]."""
    norms = weight.norm(dim=1)
    return float(norms.min() + threshold * (norms.max() - norms.min()))


def project_rows(weight: torch.Tensor, radius: float) -> torch.Tensor:
    """Each class row longer than `radius` scaled down to it; shorter rows unchanged (PGD's projection)."""
    norms = weight.norm(dim=1, keepdim=True)
    return torch.where(norms > radius, weight * (radius / norms), weight)


def softmax_class_balanced_loss(
    logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor
) -> torch.Tensor:
    """mean_{i,j} w_{y_i}·BCE(softmax(z_i)_j, onehot(y_i)_j): the official "softmax" class-balanced loss."""
    probabilities = logits.softmax(dim=1)
    one_hot = F.one_hot(targets, logits.shape[1]).to(logits)
    weights = class_weights.to(logits)[targets].unsqueeze(1).expand_as(logits)
    return F.binary_cross_entropy(probabilities, one_hot, weight=weights)


def own_weight_decays(options: dict[str, Option]) -> dict[str, Range]:
    """The shared lr and the options: the stages' own weight decays replace the recipe's."""
    return {"lr": SHARED_SEARCH_SPACE["lr"], **option_ranges(options)}


@METHODS.register("ce_weight_decay")
class CrossEntropyTunedWeightDecay(Method):
    """Stage 1 of weight balancing: CE with weight decay 5e-3 on every parameter."""

    description = "CE with tuned weight decay 5e-3, weight balancing's stage 1 (Alshammari et al., CVPR 2022)"
    weight_decay = STAGE_ONE_WEIGHT_DECAY
    options = STAGE_ONE_OPTIONS

    @classmethod
    def search_space(cls) -> dict[str, Range]:
        return own_weight_decays(cls.options)

    def parameter_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        """Every trainable parameter at the stage-one decay option (the declared 5e-3 unless tuned)."""
        trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
        return [{"params": trainable, "weight_decay": self.option("stage_one_weight_decay")}]


@METHODS.register("weight_balancing")
class WeightBalancing(Method):
    """Stage 2: the stage-1 classifier alone, class-balanced loss, weight decay, MaxNorm each epoch."""

    description = (
        "class-balanced classifier stage with MaxNorm and weight decay (Alshammari et al., CVPR 2022)"
    )
    first_stage = "ce_weight_decay"
    second_stage = STAGE_TWO
    options = {  # stage_one_weight_decay goes to the first stage, whose option it is
        **STAGE_ONE_OPTIONS,
        "max_norm_threshold": Option(MAX_NORM_THRESHOLD, Range(0.0, 1.0), "MaxNorm's radius: min→max"),
    }

    @classmethod
    def search_space(cls) -> dict[str, Range]:
        return {**own_weight_decays(cls.options), **STAGE_TWO_SPACE}

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_weights = effective_number_weights(context.class_counts)
        self.classifier: nn.Linear | None = None
        self.radius = 0.0
        self.steps_taken = 0  # of stage 2, to project after each epoch's last step

    def prepare_second_stage(self, model: nn.Module) -> None:
        freeze(model.backbone)
        self.classifier = model.head
        self.radius = max_norm_radius(model.head.weight.detach(), self.option("max_norm_threshold"))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return softmax_class_balanced_loss(logits, targets, self.class_weights)

    def on_step_end(self, model: nn.Module) -> None:
        self.steps_taken += 1
        if self.steps_taken % self.context.steps_per_epoch == 0:
            self.classifier.weight.copy_(project_rows(self.classifier.weight, self.radius))

    def state_dict(self) -> dict[str, Any]:
        return {"radius": self.radius, "steps_taken": self.steps_taken}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.radius, self.steps_taken = state["radius"], state["steps_taken"]
