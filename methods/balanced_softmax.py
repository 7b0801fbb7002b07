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
from lt_bench.methods.decoupling import EPOCH_START_COSINE, IMAGENET_LT_SCHEDULE
from lt_bench.methods.logit_adjustment import log_class_priors
from lt_bench.protocol import Paper, PaperRecipe, Reported


def balanced_softmax_loss(
    logits: torch.Tensor, targets: torch.Tensor, class_counts: Sequence[int]
) -> torch.Tensor:
    """mean_i CE(z_i + log n, y_i); a class with n_j = 0 is a UserError."""
    return F.cross_entropy(logits + log_class_priors(class_counts).to(logits), targets)


BALANCED_SOFTMAX_PAPER = Paper(
    key="balanced_softmax",
    citation="Ren, Yu, Sheng, Ma, Zhao, Yi & Li, NeurIPS 2020",
    title="Balanced Meta-Softmax for Long-Tailed Visual Recognition",
    repository="jiawei-ren/BalancedMetaSoftmax-Classification",
)
_CIFAR_DEVIATIONS = (
    "Training images also get AutoAugment (CIFAR policy) and Cutout(16); lt-bench only crops and flips "
    "(expect lower accuracy).",
    "The official CIFAR-LT subset is drawn without a numpy seed, so each run sees other images; lt-bench "
    "draws the seeded LDAM-DRW subset of --data-seed.",
    "The official code tests the epoch that scored best on its 'val' split; lt-bench tests the last epoch.",
    "The scheduler is stepped at the start of each epoch, so after the warm-up its cosine runs one epoch "
    "ahead of lt-bench's and ends at 0 (a negligible shift).",
)


def _cifar_recipe(config: str, epochs: int, warmup_epochs: int) -> PaperRecipe:
    """config/CIFAR*_LT/balanced_softmax_imba200.yaml: 13,000 iterations at batch 512, SGD momentum 0.9,
    wd 5e-4, CosineAnnealingLRWarmup from 0.05 to 0.1 over `warmup_epochs` (W), then cosine to 0.

    The scheduler is stepped at the start of each 1-based epoch k and runs k < W at
    0.05 + 0.05·(k − 1)/(W − 1), k ≥ W at 0.1·(1 + cos(π(k − W)/(T − W)))/2. lt-bench's warm-up of W
    epochs from the fraction s = (W − 2)/(2(W − 1)) of 0.1 gives the same rates up to epoch W.
    """
    return PaperRecipe(
        source=f"{BALANCED_SOFTMAX_PAPER.repository}: {config}",
        overrides={
            "backbone": "resnet32_cifar",
            "imbalance_ratio": 200.0,
            "epochs": epochs,
            "batch_size": 512,
            "lr": 0.1,
            "weight_decay": 5e-4,
            "momentum": 0.9,
            "schedule": "cosine",
            "warmup_epochs": warmup_epochs,
            "warmup_start": (warmup_epochs - 2) / (2 * (warmup_epochs - 1)),
            "milestones": (),
            "select": "last",
        },
        deviations=_CIFAR_DEVIATIONS,
    )


# run_networks.py turns iterations into epochs over the train loader, which keeps its last partial
# batch: epochs = ceil(13000 / ceil(N/512)), warm-up = ceil(800 / ceil(N/512)). At imbalance ratio 200,
# CIFAR-10-LT has N = 11,203 (22 batches: 591 epochs, warm-up 37) and CIFAR-100-LT N = 9,502 (19
# batches: 685 epochs, warm-up 43); each epoch trains int(N/512) steps, as lt-bench does.
BALANCED_SOFTMAX_RECIPES = {
    "cifar10_lt": _cifar_recipe("config/CIFAR10_LT/balanced_softmax_imba200.yaml", 591, 37),
    "cifar100_lt": _cifar_recipe("config/CIFAR100_LT/balanced_softmax_imba200.yaml", 685, 43),
    "imagenet_lt": PaperRecipe(
        source=f"{BALANCED_SOFTMAX_PAPER.repository}: config/ImageNet_LT/balanced_softmax_resnet10.yaml",
        overrides=IMAGENET_LT_SCHEDULE,
        deviations=(
            "The official config trains the OLTR code's ResNet-10 (one basic block per stage, 512-d "
            "features), which timm does not have; lt-bench keeps the shared ResNeXt-50.",
            EPOCH_START_COSINE,
        ),
    ),
}


@METHODS.register("balanced_softmax")
class BalancedSoftmax(Method):
    """Balanced Softmax loss on a linear head; predicts with the raw logits."""

    description = "balanced softmax: CE on logits + log class counts (Ren et al., NeurIPS 2020)"
    paper = BALANCED_SOFTMAX_PAPER
    paper_recipes = BALANCED_SOFTMAX_RECIPES
    # "Balanced Softmax (end-to-end)" of the README, which warns that they may differ slightly from the
    # paper's (an internal code base produced those).
    reported = (
        Reported("cifar10_lt", 200, 79.8, backbone="ResNet-32", table="README, Experiment Results"),
        Reported("cifar100_lt", 200, 46.7, backbone="ResNet-32", table="README, Experiment Results"),
    )

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        log_class_priors(context.class_counts)  # refuse empty classes before training starts

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return balanced_softmax_loss(logits, targets, self.context.class_counts)
