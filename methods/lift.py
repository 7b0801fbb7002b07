"""LIFT: lightweight fine-tuning of a foundation model for long-tail learning.

Shi, Wei, Zhou, Shao, Han & Li, "Long-Tail Learning with Foundation Model: Heavy Fine-Tuning Hurts",
ICML 2024 (official: shijxcs/LIFT). A frozen pretrained ViT with AdaptFormer adapters (lt-bench:
`--finetune peft`), a cosine classifier s·⟨x/‖x‖, w_j/‖w_j‖⟩ with s = 25 (utils/config.py `scale`),
trained with the logit-adjusted loss CE(z + log π, y) (utils/losses.py `LogitAdjustedLoss`), its
weights initialised before training from the normalised class means of the training features
(trainer.py `init_head_class_mean`). The paper's default head comes from CLIP's text embeddings of the
class names; lt-bench has no text encoder, so the record's `head_init` says "class means". The
paper's test-time ensembling (five crops, logits averaged) is the run option `--test-crops 5`, which
its paper recipe sets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.methods.ldam import NormalisedLinear
from lt_bench.methods.logit_adjustment import class_priors, logit_adjusted_loss
from lt_bench.protocol import Paper, PaperRecipe, Reported

COSINE_SCALE = 25.0  # utils/config.py: _C.scale, the CosineClassifier's s

LIFT_PAPER = Paper(
    key="lift",
    citation="Shi, Wei, Zhou, Shao, Han & Li, ICML 2024",
    title="Long-Tail Learning with Foundation Model: Heavy Fine-Tuning Hurts",
    repository="shijxcs/LIFT",
)
# README "Reproduction" and scripts/run_tab1to4_main_results.sh: `-m clip_vit_b16 adaptformer True`,
# tested again with `tte True` (utils/config.py: tte_mode "fivecrop", expand 24).
_SOURCE = "shijxcs/LIFT: configs/model/clip_vit_b16.yaml with adaptformer True and tte True"
_RECIPE = {
    "backbone": "vit_base_patch16_clip_224.openai",  # CLIP-ViT-B/16, OpenAI's weights
    "pretrained": True,
    "finetune": "peft",
    "peft": "adaptformer",  # bottleneck: peft_vit.py's rule, lt-bench's default --peft-rank
    "epochs": 10,
    "batch_size": 128,
    "lr": 0.01,
    "weight_decay": 5e-4,
    "momentum": 0.9,
    "nesterov": False,
    "schedule": "cosine",  # CosineAnnealingLR(T_max = num_epochs), stepped after each epoch
    "warmup_epochs": 0,
    "select": "last",
    "test_crops": 5,
}
_DEVIATIONS = (
    "The head starts from the normalised class means of the training features (the official "
    "init_head class_mean), not from CLIP's text embeddings of the class names (its default "
    "text_feat): lt-bench has no text encoder.",
    "Images are fitted to timm's pretrained config of the model (bicubic, evaluation crop 0.9 of "
    "the resized image; official: bilinear, 224/256), and the five test crops are cut from the "
    "evaluation image enlarged by 24/224, not from the whole image resized to 248.",
    "CIFAR-100-LT's 32x32 images keep lt-bench's pad-4 crop and flip, then are resized to 224 "
    "(official: RandomResizedCrop to 224 and flip).",
    "Mixed precision is the run's --precision (official: fp16 autocast).",
)
LIFT_RECIPES = {
    dataset: PaperRecipe(_SOURCE, _RECIPE, _DEVIATIONS)
    for dataset in ("cifar100_lt", "imagenet_lt", "places_lt")
}


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
    paper = LIFT_PAPER
    paper_recipes = LIFT_RECIPES
    # The paper's CIFAR-100-LT table, imbalance ratio 100, CLIP ViT-B/16.
    reported = (Reported("cifar100_lt", 100, 81.7, backbone="CLIP ViT-B/16", table="CIFAR-100-LT table"),)

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
