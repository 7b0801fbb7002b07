"""Logit adjustment: the loss form and the post-hoc form.

Menon et al., "Long-Tail Learning via Logit Adjustment", ICLR 2021. Loss (Eq. 10):
CE(z + τ·log π, y), predicting with the raw z. Post-hoc (Eq. 9): argmax_j z_j − τ·log π_j on a
CE-trained model. π_j is the training frequency of class j; τ = 1 by default (official main.py).
The official code adds 1e-12 inside the log; here a class without training images is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.errors import UserError
from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.methods.decoupling import SecondStageOfCE
from lt_bench.protocol import Paper, PaperRecipe, Reported
from lt_bench.search_space import Option, Range

TAU = 1.0
POSTHOC_TAU_GRID = tuple(step * 0.25 for step in range(9))  # 0.0, 0.25, …, 2.0; 0 is CE, 1 the paper's


def log_class_priors(class_priors: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """log π_j (float32); a UserError names the classes whose prior is 0 (log 0 = −∞).

    Takes frequencies or counts alike: both give the same adjusted softmax up to a constant.
    """
    return _refuse_empty_classes(class_priors).log().float()


def class_priors(class_counts: Sequence[int]) -> torch.Tensor:
    """π_j = n_j / Σ_k n_k, ordered by class index; a class without images is a UserError."""
    counts = _refuse_empty_classes(class_counts)
    return counts / counts.sum()


def _refuse_empty_classes(values: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """`values` as float64, or a UserError naming the fix when a class has none."""
    values = torch.as_tensor(values, dtype=torch.float64)
    empty = (values <= 0).nonzero().flatten().tolist()
    if empty:
        raise UserError(
            f"class(es) {', '.join(map(str, empty))} have no training images (log prior -inf): "
            "lower --imbalance-ratio so every class keeps an image, or use a method without a "
            "log prior (e.g. ce)"
        )
    return values


def logit_adjusted_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_priors: Sequence[float] | torch.Tensor,
    tau: float = TAU,
) -> torch.Tensor:
    """mean_i CE(z_i + τ·log π, y_i)."""
    return F.cross_entropy(logits + tau * log_class_priors(class_priors).to(logits), targets)


def posthoc_logit_adjustment(
    logits: torch.Tensor, class_priors: Sequence[float] | torch.Tensor, tau: float = TAU
) -> torch.Tensor:
    """z − τ·log π."""
    return logits - tau * log_class_priors(class_priors).to(logits)


LOGIT_ADJUSTMENT_PAPER = Paper(
    key="logit_adjustment",
    citation="Menon, Jayasumana, Rawat, Jain, Veit & Kumar, ICLR 2021",
    title="Long-Tail Learning via Logit Adjustment",
    repository="google-research/google-research",
)
README_TABLE = "logit_adjustment/README.md, example run of the code"
_DEVIATIONS = (
    "The official TensorFlow ResNet-32 (models.py) stacks 1×1-3×3-1×1 blocks with projection shortcuts "
    "and a final BatchNorm; lt-bench uses He et al.'s resnet32_cifar.",
    "Weight decay is a Keras L2 penalty of 1e-4 (gradient 2e-4·w) on convolution and dense weights "
    "only; lt-bench decays every parameter at 2e-4, BatchNorm included.",
    "The warm-up rises every step from 0; lt-bench raises it once per epoch, running epoch e at the "
    "official rate of that epoch's end.",
    "The official TFRecords hold their own EXP-100 subset (the same class counts, not necessarily the same "
    "images) scaled to x/255 − 0.5; lt-bench uses LDAM-DRW's seeded subset and mean/std normalisation.",
)


def _cifar_recipe(
    dataset_file: str, epochs: int, warmup_epochs: int, milestones: tuple[int, ...]
) -> PaperRecipe:
    """utils.py's schedule for one CIFAR-LT file: `epochs` over the data, batch 128, SGD with Nesterov
    momentum 0.9 from lr 0.1, per-step linear warm-up over `warmup_epochs`, ×0.1 from each 0-based
    milestone epoch (`lr_epoch = step / steps_per_epoch >= start`), the last epoch tested."""
    return PaperRecipe(
        source=f"{LOGIT_ADJUSTMENT_PAPER.repository}: logit_adjustment/main.py, logit_adjustment/utils.py "
        f"({dataset_file})",
        overrides={
            "backbone": "resnet32_cifar",
            "epochs": epochs,
            "batch_size": 128,
            "lr": 0.1,
            "weight_decay": 2e-4,
            "momentum": 0.9,
            "nesterov": True,
            "schedule": "multistep",
            "warmup_epochs": warmup_epochs,
            "warmup_start": 0.0,
            "milestones": milestones,
            "lr_decay": 0.1,
            "select": "last",
        },
        deviations=_DEVIATIONS,
    )


# dataset_mappings(): (multiplier, start epoch) (1.0, 20), (0.1, 604), (0.01, 926), (0.001, 1128) over
# 1241 epochs for cifar10-lt, and (1.0, 22), (0.1, 691), (0.01, 1059), (0.001, 1290) over 1419 epochs
# for cifar100-lt (both EXP-100).
LOGIT_ADJUSTMENT_RECIPES = {
    "cifar10_lt": _cifar_recipe("cifar10-lt", 1241, 20, (604, 926, 1128)),
    "cifar100_lt": _cifar_recipe("cifar100-lt", 1419, 22, (691, 1059, 1290)),
}


@METHODS.register("logit_adjustment")
class LogitAdjustedLoss(Method):
    """Logit-adjusted cross-entropy (τ = 1) on a linear head; predicts with the raw logits."""

    description = "logit-adjusted loss, tau = 1 (Menon et al., ICLR 2021)"
    paper = LOGIT_ADJUSTMENT_PAPER
    paper_recipes = LOGIT_ADJUSTMENT_RECIPES
    # --mode=loss, balanced test accuracy.
    reported = (
        Reported("cifar10_lt", 100, 77.89, backbone="ResNet-32", table=README_TABLE),
        Reported("cifar100_lt", 100, 44.06, backbone="ResNet-32", table=README_TABLE),
    )

    options = {"tau": Option(TAU, Range(0.0, 3.0), "τ of the prior added to the logits in the loss")}

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_priors = class_priors(context.class_counts)  # refuses empty classes up front

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return logit_adjusted_loss(logits, targets, self.class_priors, self.option("tau"))


@METHODS.register("logit_adjustment_posthoc")
class PostHocLogitAdjustment(SecondStageOfCE):
    """Post-hoc logit adjustment of the CE model, τ chosen on validation over 0…2."""

    description = "post-hoc logit adjustment of CE, tau chosen on val (Menon et al., ICLR 2021)"
    paper = LOGIT_ADJUSTMENT_PAPER
    # The CE stage on the same recipe; the official --mode=posthoc adjusts with its default τ = 1.
    paper_recipes = {
        dataset: PaperRecipe(recipe.source, {**recipe.overrides, "knobs": {"tau": TAU}}, recipe.deviations)
        for dataset, recipe in LOGIT_ADJUSTMENT_RECIPES.items()
    }
    reported = (
        Reported("cifar10_lt", 100, 77.32, backbone="ResNet-32", table=README_TABLE),
        Reported("cifar100_lt", 100, 44.07, backbone="ResNet-32", table=README_TABLE),
    )
    test_time_knob_ranges = {"tau": (0.0, math.inf)}

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_priors = class_priors(context.class_counts)  # refuses empty classes up front

    def test_time_knobs(self) -> dict[str, tuple[float, ...]]:
        return {"tau": POSTHOC_TAU_GRID}

    def inference_logits(self, head: nn.Module, features: torch.Tensor, **knobs: float) -> torch.Tensor:
        return posthoc_logit_adjustment(head(features), self.class_priors, knobs["tau"])
