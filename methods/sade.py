"""SADE: self-supervised aggregation of diverse experts, for test-agnostic long-tailed recognition.

Zhang et al., "Self-Supervised Aggregation of Diverse Experts for Test-Agnostic Long-Tailed
Recognition", NeurIPS 2022; official code Vanint/SADE-AgnosticLT.

Three experts with skills for different test label distributions (model/loss.py, DiverseExpertLoss,
the sum of their losses): a long-tailed one, CE(z₁, y); a balanced one, CE(z₂ + log π, y); an
inverse one, CE(z₃ + log π − λ·log π̄, y), where π̄ gives each class the prior of its mirror in the
frequency ranking and λ = 2 (every official config). Each expert is a cosine classifier scaled by
s = 30 (`use_norm`). At test time the experts' logits are summed with weights softmax(w), learnt on
the unlabelled test images by maximising the cosine similarity of the aggregated softmax predictions
of two augmented views (test_training_*.py: w starts at 1/3 each, SGD lr 0.1 on CIFAR and 0.025 on
ImageNet-LT, momentum 0.9, Nesterov, wd 5e-4, batches of 128, 5 epochs, stopping after an epoch
where a weight, rounded to 2 decimals, is below 0.05). Without test images (validation) the
experts are averaged, as the official test.py does.

Deviation: the official experts each own the backbone's last stages (ResNet-32's layer2-3,
ResNeXt-50's layer3-4, width reduced); here they share the whole timm backbone and differ in their
heads only. The official CIFAR test-time script adapts on training images drawn to the test
distribution; here it adapts on the test images themselves, as the paper describes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.experts import ExpertHeads, weighted_experts
from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.methods.ldam import NormalisedLinear
from lt_bench.methods.logit_adjustment import class_priors, log_class_priors, logit_adjusted_loss
from lt_bench.protocol import Paper, PaperRecipe, Reported
from lt_bench.search_space import Option, Range

EXPERTS = ("long_tailed", "balanced", "inverse")
INVERSE_LAMBDA = 2.0  # "tau": 2 of every official config
SCALE = 30.0  # s of the official NormedLinear experts
# test_training_*.py with configs/test_time_*_sade.json
TEST_TIME_EPOCHS = 5
TEST_TIME_BATCH_SIZE = 128
TEST_TIME_MOMENTUM = 0.9
TEST_TIME_WEIGHT_DECAY = 5e-4
TEST_TIME_LR = {"imagenet_lt": 0.025}
TEST_TIME_DEFAULT_LR = 0.1  # the CIFAR-100-LT configs'; other datasets take it too
SMALLEST_WEIGHT = 0.05  # the official stop: a weight, rounded to 2 decimals, below this

PAPER = Paper(
    key="sade",
    citation="Zhang et al., NeurIPS 2022",
    title="Self-Supervised Aggregation of Diverse Experts for Test-Agnostic Long-Tailed Recognition",
    repository="Vanint/SADE-AgnosticLT",
)
# configs/config_cifar100_ir{10,50}_sade.json: ResNet-32, 200 epochs, batch 128, SGD lr 0.1, momentum
# 0.9, Nesterov, wd 5e-4; CustomLR: 0-based epoch e < 5 at 0.1·(e+1)/5, ×0.1 from epoch 160, ×0.01
# from 180 (a LambdaLR stepped after each epoch).
CIFAR_OVERRIDES = {
    "backbone": "resnet32_cifar",
    "epochs": 200,
    "batch_size": 128,
    "lr": 0.1,
    "weight_decay": 5e-4,
    "momentum": 0.9,
    "nesterov": True,
    "schedule": "multistep",
    "warmup_epochs": 5,
    "warmup_start": 0.0,
    "milestones": (160, 180),
    "lr_decay": 0.1,
    "select": "last",
}
# configs/config_imagenet_lt_resnext50_sade.json: ResNeXt-50, 180 epochs, batch 64, SGD lr 0.025,
# momentum 0.9, Nesterov, wd 5e-4; CosineAnnealingLR (T_max 180, to 0) stepped after each epoch, so
# 0-based epoch e runs at 0.025·(1 + cos(πe/180))/2, lt-bench's cosine without warm-up.
IMAGENET_LT_OVERRIDES = {
    "backbone": "resnext50_32x4d",
    "epochs": 180,
    "batch_size": 64,
    "lr": 0.025,
    "weight_decay": 5e-4,
    "momentum": 0.9,
    "nesterov": True,
    "schedule": "cosine",
    "warmup_epochs": 0,
    "select": "last",
}
README_TABLE = "README, Results: uniform test class distribution"
SHARED_BACKBONE = (
    "The official experts own separate copies of the backbone's later stages; lt-bench's share one "
    "backbone and differ in their heads."
)
CIFAR_DEVIATIONS = (
    SHARED_BACKBONE,
    "The official trainer keeps the checkpoint of the best test accuracy ('monitor': 'max "
    "val_accuracy' on the test set); lt-bench tests the last epoch.",
)


def inverse_prior(class_priors: torch.Tensor) -> torch.Tensor:
    """π̄: the class of the k-th smallest prior gets the k-th largest (ties in sort order)."""
    sorted_priors, order = torch.sort(class_priors)
    ranks = torch.argsort(order)
    return sorted_priors[len(class_priors) - 1 - ranks]


def skill_diverse_loss(
    expert_logits: torch.Tensor,
    targets: torch.Tensor,
    class_priors: torch.Tensor,
    inverse_lambda: float = INVERSE_LAMBDA,
) -> torch.Tensor:
    """CE(z₁, y) + CE(z₂ + log π, y) + CE(z₃ + log π − λ·log π̄, y) over logits [batch, 3, classes]."""
    long_tailed, balanced, inverse = expert_logits.unbind(dim=1)
    inverse_shift = -inverse_lambda * log_class_priors(inverse_prior(class_priors)).to(inverse)
    return (
        F.cross_entropy(long_tailed, targets)
        + logit_adjusted_loss(balanced, targets, class_priors)
        + logit_adjusted_loss(inverse + inverse_shift, targets, class_priors)
    )


def prediction_stability(
    view_logits: torch.Tensor, other_view_logits: torch.Tensor, raw_weights: torch.Tensor
) -> torch.Tensor:
    """mean_i cos(softmax(Σ_e a_e·z_ie), softmax(Σ_e a_e·z'_ie)) with a = softmax(raw_weights)."""
    weights = raw_weights.softmax(dim=0)
    first = weighted_experts(view_logits, weights).softmax(dim=1)
    second = weighted_experts(other_view_logits, weights).softmax(dim=1)
    return F.cosine_similarity(first, second, dim=1, eps=1e-6).mean()


def self_supervised_aggregation(
    view_logits: torch.Tensor,
    other_view_logits: torch.Tensor,
    generator: torch.Generator,
    *,
    lr: float,
    epochs: int = TEST_TIME_EPOCHS,
    batch_size: int = TEST_TIME_BATCH_SIZE,
) -> torch.Tensor:
    """The aggregation weights softmax(w) that maximise `prediction_stability` of two views' expert
    logits [images, experts, classes], by SGD on w from equal values over shuffled batches."""
    experts = view_logits.shape[1]
    raw_weights = nn.Parameter(torch.full((experts,), 1.0 / experts))
    optimizer = torch.optim.SGD(
        [raw_weights], lr=lr, momentum=TEST_TIME_MOMENTUM, weight_decay=TEST_TIME_WEIGHT_DECAY, nesterov=True
    )
    view_logits, other_view_logits = view_logits.detach().cpu(), other_view_logits.detach().cpu()
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(len(view_logits), generator=generator)
            for batch in order.split(batch_size):
                loss = -prediction_stability(view_logits[batch], other_view_logits[batch], raw_weights)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            weights = raw_weights.detach().softmax(dim=0)
            if (torch.round(weights, decimals=2) < SMALLEST_WEIGHT).any():
                break
    return raw_weights.detach().softmax(dim=0)


def weight_knobs(weights: Sequence[float]) -> dict[str, float]:
    """The aggregation weights as inference knobs, one per expert."""
    return {f"weight_{name}": float(weight) for name, weight in zip(EXPERTS, weights, strict=True)}


class CosineExperts(Method):
    """Base of SADE and BalPoE (whose code builds on SADE's): one cosine classifier per expert,
    scaled by s = 30, on the shared backbone; the experts' mean logits predict."""

    experts: ClassVar[tuple[str, ...]] = EXPERTS  # one name per expert

    def __init__(self, context: MethodContext) -> None:
        super().__init__(context)
        self.class_priors = class_priors(context.class_counts)  # refuses empty classes up front

    def build_head(self) -> nn.Module:
        dim, classes = self.context.feature_dim, self.context.num_classes
        return ExpertHeads([NormalisedLinear(dim, classes) for _ in self.experts], scale=SCALE)

    def combine_experts(self, head_output: torch.Tensor) -> torch.Tensor:
        return head_output.mean(dim=1)


@METHODS.register("sade")
class SADE(CosineExperts):
    """Three skill-diverse cosine experts; their logits aggregated with weights learnt on the
    unlabelled test images (equal weights when none are given)."""

    description = "skill-diverse experts, test-time self-supervised aggregation (Zhang et al., NeurIPS 2022)"
    paper = PAPER
    paper_recipes = {
        "cifar100_lt": PaperRecipe(
            source=f"{PAPER.repository}: configs/config_cifar100_ir{{10,50}}_sade.json",
            overrides=CIFAR_OVERRIDES,
            deviations=CIFAR_DEVIATIONS,
        ),
        "imagenet_lt": PaperRecipe(
            source=f"{PAPER.repository}: configs/config_imagenet_lt_resnext50_sade.json",
            overrides=IMAGENET_LT_OVERRIDES,
            deviations=(SHARED_BACKBONE,),
        ),
    }
    reported = (
        Reported("imagenet_lt", None, 58.8, backbone="ResNeXt-50", table=README_TABLE),
        Reported("cifar100_lt", 100, 49.8, backbone="ResNet-32", table=README_TABLE),
    )
    adapts_at_test = True
    options = {"tau": Option(INVERSE_LAMBDA, Range(0.5, 4.0), "λ (the configs' tau) of the inverse expert")}

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return skill_diverse_loss(logits, targets, self.class_priors, self.option("tau"))

    def inference_logits(self, head: nn.Module, features: torch.Tensor, **knobs: float) -> torch.Tensor:
        if not knobs:
            return self.combine_experts(head(features))
        weights = torch.tensor([knobs[f"weight_{name}"] for name in self.experts])
        return weighted_experts(head(features), weights)

    def adapt_to_test(
        self, head: nn.Module, view: torch.Tensor, other_view: torch.Tensor, generator: torch.Generator
    ) -> dict[str, float]:
        with torch.no_grad():
            view_logits, other_view_logits = head(view), head(other_view)
        lr = TEST_TIME_LR.get(self.context.dataset, TEST_TIME_DEFAULT_LR)
        weights = self_supervised_aggregation(view_logits, other_view_logits, generator, lr=lr)
        return weight_knobs(weights.tolist())
