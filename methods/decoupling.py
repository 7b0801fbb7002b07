"""Decoupling representation and classifier: cRT, τ-normalisation and LWS on a CE backbone.

Kang et al., "Decoupling Representation and Classifier for Long-Tailed Recognition", ICLR 2020
(§4 and the official classifier-balancing code). Stage 1 is plain CE; stage 2 changes only the
classifier: cRT re-trains a re-initialised linear classifier on the frozen backbone, LWS learns
one scale per class on the frozen stage-1 classifier (bias scaled too), both with class-balanced
sampling, each on its own schedule from config/<dataset>/cls_crt.yaml and cls_lws.yaml; τ-norm
trains nothing and rescales each class row by its norm to the power τ.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lt_bench.data import samplers
from lt_bench.method import METHODS, Method, SecondStage
from lt_bench.protocol import Paper, PaperRecipe, Reported
from lt_bench.search_space import Range

TAU_GRID = tuple(round(0.1 * step, 1) for step in range(21))  # 0.0, 0.1, …, 2.0 as in tau_norm.py
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


DECOUPLING_PAPER = Paper(
    key="decoupling",
    citation="Kang, Xie, Rohrbach, Yan, Gordo, Feng & Kalantidis, ICLR 2020",
    title="Decoupling Representation and Classifier for Long-Tailed Recognition",
    repository="facebookresearch/classifier-balancing",
)
# The scheduler habit of this code base, which the TDE and Balanced Softmax code inherit.
EPOCH_START_COSINE = (
    "CosineAnnealingLR is stepped at the start of each epoch: the official epoch k (1-based) runs at "
    "lr·(1 + cos(πk/T))/2 and the last at 0, lt-bench's epoch k at the rate of official epoch k − 1 "
    "(a negligible shift)."
)
CLASS_AWARE_CYCLES = (
    "Stage 2's class-aware sampling restarts its class and image cycles every epoch; the official "
    "ClassAwareSampler carries them over (negligible)."
)
README_TABLE = "README results, ImageNet_LT"
# ImageNet-LT joint training of config/ImageNet_LT/feat_uniform.yaml, which the TDE and Balanced
# Softmax configs repeat: 90 epochs, batch 512, SGD momentum 0.9 from lr 0.2, cosine to 0, wd 5e-4,
# the best epoch on the validation split.
IMAGENET_LT_SCHEDULE = {
    "epochs": 90,
    "batch_size": 512,
    "lr": 0.2,
    "weight_decay": 5e-4,
    "momentum": 0.9,
    "schedule": "cosine",
    "warmup_epochs": 0,
    "select": "best-val",
}
# The ResNeXt-50 of this code family keeps its BatchNorm weights at 1 (no zero-initialised last BN).
RESNEXT50 = {"backbone": "resnext50_32x4d", "zero_init_last": False}
# Stage 1, joint CE with instance-balanced sampling (the paper's "Joint").
JOINT_RECIPES = {
    "imagenet_lt": PaperRecipe(
        source=f"{DECOUPLING_PAPER.repository}: config/ImageNet_LT/feat_uniform.yaml",
        overrides={**RESNEXT50, **IMAGENET_LT_SCHEDULE},
        deviations=(EPOCH_START_COSINE,),
    ),
    "inat2018": PaperRecipe(
        source=f"{DECOUPLING_PAPER.repository}: config/iNaturalist18/feat_unifrom.yaml",
        overrides={
            **IMAGENET_LT_SCHEDULE,
            "backbone": "resnet50",
            "zero_init_last": False,
            "weight_decay": 1e-4,
            "select": "last",  # lt-bench has no validation split apart from iNaturalist's test images
        },
        deviations=(
            EPOCH_START_COSINE,
            "The official code keeps the epoch with the best accuracy on iNaturalist's val split, which "
            "is also the test split; lt-bench keeps the last epoch.",
        ),
    ),
}
# Places-LT's stage 1 fine-tunes an ImageNet-pretrained ResNet-152 on Places-LT; it is released as
# weights (Places_LT/models/resnet152_uniform.pth) without a config; only the stage-2 configs are public.
_PLACES_STAGE_ONE = PaperRecipe(
    source=f"{DECOUPLING_PAPER.repository}: README (Places_LT stage-1 ResNet-152 weights)",
    overrides={"backbone": "resnet152", "pretrained": True, "zero_init_last": False, "select": "best-val"},
    deviations=(
        EPOCH_START_COSINE,
        "Stage 1's fine-tuning schedule has no public config: lt-bench fine-tunes timm's ImageNet "
        "weights of resnet152, which may differ from the official ones, on the shared Places-LT schedule.",
    ),
)


def with_stage_two(
    stage_one: PaperRecipe, config: str, *stage_two: str, schedule: dict[str, float] | None = None
) -> PaperRecipe:
    """A second stage's recipe: stage 1's fields (what lt-bench trains first), the stage-2 config, where
    its `schedule` differs from the method's declared `second_stage` (`second_stage_*` fields), and
    what that stage does differently in lt-bench."""
    return PaperRecipe(
        source=f"{stage_one.source}, {config}",
        overrides={**stage_one.overrides, **(schedule or {})},
        deviations=(*stage_one.deviations, *stage_two),
    )


def classifier_stage_recipes(config: str, declared: SecondStage, inat_epochs: int) -> dict[str, PaperRecipe]:
    """cRT's or LWS's recipes: the joint stage 1, then config/<dataset>/`config`, which trains the
    classifier with ClassAwareSampler on the `declared` schedule (ImageNet-LT's), except on iNaturalist
    (`inat_epochs` epochs, weight decay 1e-4) and Places-LT (batch 256 at lr 0.1)."""
    inat = {"second_stage_weight_decay": 1e-4}
    if inat_epochs != declared.epochs:
        inat["second_stage_epochs"] = inat_epochs
    places = (
        "Stage 2 runs at batch 256 and classifier lr 0.1; lt-bench runs it at the stage-1 batch with the "
        "lr per image the same (0.2 at batch 512)."
    )
    return {
        "imagenet_lt": with_stage_two(
            JOINT_RECIPES["imagenet_lt"], f"config/ImageNet_LT/{config}", CLASS_AWARE_CYCLES
        ),
        "places_lt": with_stage_two(
            _PLACES_STAGE_ONE, f"config/Places_LT/{config}", CLASS_AWARE_CYCLES, places
        ),
        "inat2018": with_stage_two(
            JOINT_RECIPES["inat2018"],
            f"config/iNaturalist18/{config}",
            CLASS_AWARE_CYCLES,
            schedule=inat,
        ),
    }


# config/ImageNet_LT/cls_crt.yaml and cls_lws.yaml: batch 512, SGD lr 0.2, momentum 0.9, weight decay
# 5e-4, cosine to 0 (coslr), num_epochs 10 (cRT) and 5 (LWS), whatever stage 1's length.
CRT_STAGE = SecondStage(epochs=10, lr=0.2, batch_size_for_lr=512, weight_decay=5e-4, schedule="cosine")
SECOND_STAGE_SPACE = {  # tuned around the declared stage: lr × [0.1, 10], weight decay log-uniform
    "second_stage_lr": Range(0.1, 10.0, log=True, per_recipe=True),
    "second_stage_weight_decay": Range(1e-5, 1e-1, log=True),
}
LWS_STAGE = SecondStage(epochs=5, lr=0.2, batch_size_for_lr=512, weight_decay=5e-4, schedule="cosine")


class SecondStageOfCE(Method):
    """A classifier-only stage on a finished CE run (trains nothing unless it declares `second_stage`)."""

    first_stage = "ce"

    @classmethod
    def search_space(cls) -> dict[str, Range]:
        """CE's lr × weight decay and, for a stage that trains, its own lr and weight decay."""
        return super().search_space() | (SECOND_STAGE_SPACE if cls.second_stage is not None else {})

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
    second_stage = CRT_STAGE
    paper = DECOUPLING_PAPER
    paper_recipes = classifier_stage_recipes("cls_crt.yaml", CRT_STAGE, inat_epochs=30)
    reported = (
        Reported("imagenet_lt", None, 49.6, 61.8, 46.2, 27.4, backbone="ResNeXt-50", table=README_TABLE),
    )

    def prepare_second_stage(self, model: nn.Module) -> None:
        freeze(model.backbone)
        model.head = self.build_head()


@METHODS.register("lws")
class LearnableWeightScaling(SecondStageOfCE):
    """LWS: one learned scale per class on the frozen CE classifier, class-balanced sampling."""

    description = "learnable per-class scales on the frozen CE classifier (Kang et al., ICLR 2020)"
    second_stage = LWS_STAGE
    paper = DECOUPLING_PAPER
    paper_recipes = classifier_stage_recipes("cls_lws.yaml", LWS_STAGE, inat_epochs=5)
    reported = (
        Reported("imagenet_lt", None, 49.9, 60.2, 47.2, 30.3, backbone="ResNeXt-50", table=README_TABLE),
    )

    def prepare_second_stage(self, model: nn.Module) -> None:
        freeze(model)
        model.head = ScaledClassifier(model.head)


@METHODS.register("tau_norm")
class TauNormalisation(SecondStageOfCE):
    """τ-normalised CE classifier (bias dropped), τ chosen on validation over 0.0…2.0."""

    description = "tau-normalised CE classifier, tau chosen on validation (Kang et al., ICLR 2020)"
    paper = DECOUPLING_PAPER
    paper_recipes = {
        dataset: with_stage_two(joint, "tau_norm.py") for dataset, joint in JOINT_RECIPES.items()
    }
    reported = (
        Reported("imagenet_lt", None, 49.4, 59.1, 46.9, 30.7, backbone="ResNeXt-50", table=README_TABLE),
    )
    test_time_knob_ranges = {"tau": (0.0, math.inf)}

    def test_time_knobs(self) -> dict[str, tuple[float, ...]]:
        return {"tau": TAU_GRID}

    def inference_logits(self, head: nn.Module, features: torch.Tensor, **knobs: float) -> torch.Tensor:
        return features @ tau_normalize(head.weight, knobs["tau"]).t()
