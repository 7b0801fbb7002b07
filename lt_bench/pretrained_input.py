"""A pretrained backbone's input: the image size, mean / std, interpolation and crop fraction its timm
pretrained config declares (`timm.data.resolve_model_data_config`), applied to a dataset's splits.

A pretrained model sees images as it was trained on them: CIFAR's 32×32 images are resized to a CLIP
ViT-B/16's 224×224 and normalised with CLIP's mean and std. Runs from scratch keep the dataset's own
input.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from torch import nn

from lt_bench.data.base import LongTailedData, Split, TensorSplit
from lt_bench.data.files import FileSplit, imagenet_transforms


@dataclass(frozen=True)
class ModelInput:
    """What a pretrained model expects of its images."""

    size: tuple[int, int]  # (height, width)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str  # "bilinear", "bicubic" or "nearest"
    crop_pct: float  # evaluation crops size / crop_pct pixels' centre (file datasets)

    def for_channels(self, channels: int) -> ModelInput:
        """This input for `channels`-channel images: a grey image takes the mean of the RGB mean and
        std (timm adapts an RGB model to one channel by summing its first layer over colours)."""
        if channels == len(self.mean):
            return self
        if channels != 1:
            raise ValueError(f"cannot fit {channels}-channel images to a {len(self.mean)}-channel model")
        mean, std = sum(self.mean) / len(self.mean), sum(self.std) / len(self.std)
        return dataclasses.replace(self, mean=(mean,), std=(std,))

    def describe(self) -> dict[str, Any]:
        """The record's account: what was applied and where it came from."""
        return {"source": "timm pretrained config", **dataclasses.asdict(self)}


def pretrained_input(backbone: nn.Module, channels: int, *, starts_pretrained: bool) -> ModelInput | None:
    """The input `backbone`'s timm pretrained config declares, for `channels`-channel images; None for
    a run from scratch or a model without a pretrained config (e.g. lt-bench's own backbones)."""
    if not starts_pretrained or not getattr(backbone, "pretrained_cfg", None):
        return None
    from timm.data import resolve_model_data_config

    from_config = resolve_model_data_config(backbone)
    _, height, width = from_config["input_size"]
    return ModelInput(
        size=(height, width),
        mean=tuple(float(value) for value in from_config["mean"]),
        std=tuple(float(value) for value in from_config["std"]),
        interpolation=from_config["interpolation"],
        crop_pct=float(from_config["crop_pct"]),
    ).for_channels(channels)


def fit_input(data: LongTailedData, model_input: ModelInput) -> LongTailedData:
    """`data` with every split resized and normalised as `model_input` says. In-memory images keep
    their augmentation and are resized after it; image files are cropped as timm fine-tunes (random
    resized crop and flip; evaluation: resize to size / crop_pct, centre crop)."""
    return dataclasses.replace(
        data,
        train=_fit(data.train, model_input),
        val=_fit(data.val, model_input),
        test=_fit(data.test, model_input),
    )


def _fit(split: Split, model_input: ModelInput) -> Split:
    if isinstance(split, TensorSplit):
        return dataclasses.replace(
            split,
            mean=model_input.mean,
            std=model_input.std,
            resize=model_input.size,
            interpolation=model_input.interpolation,
        )
    if isinstance(split, FileSplit):
        transforms = imagenet_transforms(
            model_input.mean,
            model_input.std,
            color_jitter=False,
            size=model_input.size,
            crop_pct=model_input.crop_pct,
            interpolation=model_input.interpolation,
        )
        return split.with_transforms(*transforms)
    raise TypeError(f"cannot fit a pretrained model's input to a {type(split).__name__}")
