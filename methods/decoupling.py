"""Decoupling representation and classifier: cRT, τ-normalisation and LWS on a CE backbone.

Kang et al., "Decoupling Representation and Classifier for Long-Tailed Recognition", ICLR 2020
(§4 and the official classifier-balancing code). Stage 1 is plain CE; stage 2 changes only the
classifier: cRT re-trains a re-initialised linear classifier on the frozen backbone, LWS learns
one scale per class on the frozen stage-1 classifier (bias scaled too), both with class-balanced
sampling; τ-norm trains nothing and rescales each class row by its norm to the power τ.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from lt_bench.data import samplers
from lt_bench.method import METHODS, Method

TAU_GRID = tuple(round(0.1 * step, 1) for step in range(21))  # 0.0, 0.1, …, 2.0 as in tau_norm.py
OFFICIAL_FIRST_STAGE_EPOCHS = 90  # ImageNet-LT joint training, against which stage-2 epochs are scaled
NORM_EPSILON = 1e-12  # an all-zero class row stays zero instead of 0/0


def tau_normalize(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """w̃_j = w_j / ‖w_j‖₂^τ for each class row of `weight` [C, D] (Kang et al. Eq. in §4)."""
    return weight / weight.norm(dim=1, keepdim=True).clamp(min=NORM_EPSILON).pow(tau)


def freeze(module: nn.Module) -> None:
    """Stop gradients into `module`; its BatchNorm stays in train mode, as in the official code."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)


class ScaledClassifier(nn.Module):
    """LWS: (W·x + b) ⊙ f, stage-1 W and b frozen, one learned scale f_j per class starting at 1."""

    def __init__(self, classifier: nn.Linear) -> None:
        super().__init__()
        self.classifier = classifier
        self.scales = nn.Parameter(torch.ones(classifier.out_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features) * self.scales


class SecondStageOfCE(Method):
    """A classifier-only stage on a finished CE run; official stage-2 epochs scaled by ours / 90."""

    first_stage = "ce"
    official_epochs: ClassVar[int] = 0  # 0: nothing is trained, only test-time knobs are chosen

    def second_stage_epochs(self) -> int:
        if not self.official_epochs:
            return 0
        return max(1, round(self.context.epochs * self.official_epochs / OFFICIAL_FIRST_STAGE_EPOCHS))

    def sample_order(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Under the paper protocol the official ClassAwareSampler (shuffled classes in turn, 4 images
        per visit); under the shared one i.i.d. class-balanced draws."""
        if self.context.protocol == "paper":
            return samplers.class_aware(labels, generator, images_per_visit=4)
        return samplers.class_balanced(labels, generator)


@METHODS.register("crt")
class ClassifierRetraining(SecondStageOfCE):
    """cRT: a re-initialised linear classifier, class-balanced sampling, frozen CE backbone."""

    description = "classifier re-training on the frozen CE backbone (Kang et al., ICLR 2020)"
    official_epochs = 10

    def prepare_second_stage(self, model: nn.Module) -> None:
        freeze(model.backbone)
        model.head = self.build_head()


@METHODS.register("lws")
class LearnableWeightScaling(SecondStageOfCE):
    """LWS: one learned scale per class on the frozen CE classifier, class-balanced sampling."""

    description = "learnable per-class scales on the frozen CE classifier (Kang et al., ICLR 2020)"
    official_epochs = 5

    def prepare_second_stage(self, model: nn.Module) -> None:
        freeze(model)
        model.head = ScaledClassifier(model.head)


@METHODS.register("tau_norm")
class TauNormalisation(SecondStageOfCE):
    """τ-normalised CE classifier (bias dropped), τ chosen on validation over 0.0…2.0."""

    description = "tau-normalised CE classifier, tau chosen on validation (Kang et al., ICLR 2020)"

    def test_time_knobs(self) -> dict[str, tuple[float, ...]]:
        return {"tau": TAU_GRID}

    def inference_logits(self, head: nn.Module, features: torch.Tensor, **knobs: float) -> torch.Tensor:
        return features @ tau_normalize(head.weight, knobs["tau"]).t()
