"""Test-time crop ensembling: each test image seen as several crops (and their mirror images), the
logits averaged over them.

As LIFT (Shi et al., ICML 2024; official shijxcs/LIFT trainer.py, `tte` with `expand` 24 at
resolution 224) does it: the image enlarged by 24/224 of its side, its four corner crops and centre
crop at the original size (torchvision's FiveCrop), ten with their mirror images (TenCrop), and the
model's logits averaged over the crops.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CROP_COUNTS = (1, 5, 10)  # one view (no ensembling), five crops, five crops and their mirror images
ENLARGEMENT = 24 / 224  # LIFT utils/config.py: `expand` 24 pixels at `resolution` 224


def crop_views(images: torch.Tensor, crops: int) -> torch.Tensor:
    """[B, C, H, W] → [B·crops, C, H, W], each image's views together: the image itself for 1; the
    top-left, top-right, bottom-left, bottom-right and centre H×W crops of the image enlarged by
    24/224 for 5; those and the same crops of the mirrored image for 10."""
    if crops == 1:
        return images
    height, width = images.shape[-2:]
    big_height, big_width = round(height * (1 + ENLARGEMENT)), round(width * (1 + ENLARGEMENT))
    enlarged = F.interpolate(images, size=(big_height, big_width), mode="bilinear", align_corners=False)
    bottom, right = big_height - height, big_width - width
    offsets = [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]
    sources = [enlarged] if crops == 5 else [enlarged, enlarged.flip(-1)]
    views = [source[..., y : y + height, x : x + width] for source in sources for y, x in offsets]
    return torch.stack(views, dim=1).flatten(0, 1)


def average_views(logits: torch.Tensor, crops: int) -> torch.Tensor:
    """[B·crops, K] logits of `crop_views` → [B, K], the mean over each image's views."""
    return logits.view(-1, crops, logits.shape[-1]).mean(dim=1)
