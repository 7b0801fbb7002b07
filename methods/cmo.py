"""CMO: context-rich minority oversampling by CutMix of minority-sampled images onto the batch.

Park, Hong, Heo, Yun & Choi, "The Majority Can Help the Minority: Context-rich Minority
Oversampling for Long-tailed Classification", CVPR 2022 (official naver-ai/cmo, cifar_train.py and
opts.py). A second batch is drawn with class weights n_j^(−α) per image (α = 1: every class equally
likely, `weighted_alpha`); with probability 0.5 (`mixup_prob`), in epochs 3 < e < E − 3 (0-based,
`start_data_aug`, `end_data_aug`), a box of it is pasted onto the batch: λ ~ Beta(1, 1), a box of
sides ⌊H·√(1 − λ)⌋ × ⌊W·√(1 − λ)⌋ centred uniformly and clipped to the image, λ then set to the share
of the image left uncovered, and the loss is λ·loss(y) + (1 − λ)·loss(y_minority). The base loss
is CE (the official default `loss_type`). The official cifar_train.py is LDAM-DRW's, with its
defaults: the paper protocol trains CMO on LDAM-DRW's CIFAR recipe.
"""

from __future__ import annotations

import numpy as np
import torch

from lt_bench.data import samplers
from lt_bench.method import METHODS, Method, MixedBatch
from lt_bench.methods.ldam import LDAM_DRW_RECIPES
from lt_bench.protocol import Paper, PaperRecipe, Reported
from lt_bench.search_space import Option, Range

MIX_PROBABILITY = 0.5  # opts.py --mixup_prob
BETA = 1.0  # opts.py --beta
START_EPOCH = 3  # opts.py --start_data_aug: mixing from 0-based epoch 4
END_EPOCHS = 3  # opts.py --end_data_aug: no mixing in the last 3 epochs
WEIGHTED_ALPHA = 1.0  # opts.py --weighted_alpha: per-image weight n_j^(−α)

CMO_PAPER = Paper(
    key="cmo",
    citation="Park, Hong, Heo, Yun & Choi, CVPR 2022",
    title="The Majority Can Help the Minority: Context-rich Minority Oversampling for Long-tailed "
    "Classification",
    repository="naver-ai/cmo",
)
# cifar_train.py (CIFAR-100 only) with opts.py's defaults, no --use_randaug: ResNet-32, 200 epochs,
# batch 128, lr 0.1, wd 2e-4 and adjust_learning_rate exactly as LDAM-DRW's cifar_train.py.
_LDAM_DRW_CIFAR = LDAM_DRW_RECIPES["cifar100_lt"]
CMO_RECIPES = {
    "cifar100_lt": PaperRecipe(
        source=f"{CMO_PAPER.repository}: cifar_train.py, opts.py (--loss_type CE --data_aug CMO)",
        overrides=_LDAM_DRW_CIFAR.overrides,
        deviations=_LDAM_DRW_CIFAR.deviations,
    )
}


def cutmix_box(height: int, width: int, share: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a box of sides ⌊H·√(1−λ)⌋, ⌊W·√(1−λ)⌋ centred at a uniform pixel,
    clipped to the image (the official rand_bbox)."""
    cut = np.sqrt(1.0 - share)
    cut_height, cut_width = int(height * cut), int(width * cut)
    centre_y, centre_x = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = np.clip([centre_y - cut_height // 2, centre_y + cut_height // 2], 0, height)
    left, right = np.clip([centre_x - cut_width // 2, centre_x + cut_width // 2], 0, width)
    return int(top), int(left), int(bottom), int(right)


def paste_box(
    images: torch.Tensor, others: torch.Tensor, box: tuple[int, int, int, int]
) -> tuple[torch.Tensor, float]:
    """`images` with the box of `others` pasted in, and the share λ of each image left uncovered."""
    top, left, bottom, right = box
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = others[:, :, top:bottom, left:right]
    height, width = images.shape[-2:]
    return mixed, 1.0 - (bottom - top) * (right - left) / (height * width)


def mixes_in_epoch(epoch: int, epochs: int) -> bool:
    """Whether CMO may mix in 0-based `epoch` of `epochs`: start < epoch < epochs − end."""
    return START_EPOCH < epoch < epochs - END_EPOCHS


@METHODS.register("cmo")
class ContextRichMinorityOversampling(Method):
    """CE with CutMix of a minority-sampled batch onto the instance-sampled batch (p = 0.5)."""

    description = "CutMix of minority-sampled images onto the batch (Park et al., CVPR 2022)"
    paper = CMO_PAPER
    paper_recipes = CMO_RECIPES
    # CE + CMO on CIFAR-100-LT at imbalance ratio 100, ResNet-32, 200 epochs.
    reported = (Reported("cifar100_lt", 100, 43.9, backbone="ResNet-32", table="CIFAR-100-LT, CE + CMO"),)

    options = {"mix_probability": Option(MIX_PROBABILITY, Range(0.1, 1.0), "a step's chance to mix")}

    def mixing_sample_order(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # Class j drawn ∝ n_j · n_j^(−α), then an image of it uniformly, with replacement.
        return samplers.class_power(labels, generator, 1.0 - WEIGHTED_ALPHA)

    def mix_batch(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        second: tuple[torch.Tensor, torch.Tensor] | None,
        epoch: int,
        rng: np.random.Generator,
    ) -> MixedBatch | None:
        if rng.random() >= self.option("mix_probability") or not mixes_in_epoch(epoch, self.context.epochs):
            return None
        others, other_targets = second
        box = cutmix_box(images.shape[-2], images.shape[-1], float(rng.beta(BETA, BETA)), rng)
        mixed, share = paste_box(images, others, box)
        return MixedBatch(mixed, targets, other_targets, share)
