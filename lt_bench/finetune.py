"""Fine-tuning modes: what of a (pretrained) backbone trains.

`full` trains everything; `linear` freezes the backbone and trains the head on its features, computed
once per run in eval mode (so without the dataset's training augmentation); `peft` freezes the
backbone and trains adapters inserted into its ViT blocks (lt_bench.peft) and the head.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lt_bench.backbones import LongTailClassifier
from lt_bench.peft import insert_adapters, lift_rank, vit_blocks


def prepare_backbone(
    backbone: nn.Module, *, finetune: str, peft: str, peft_rank: int | None, num_classes: int, name: str
) -> dict[str, Any]:
    """Freeze `backbone` (in place) for `linear` and `peft`, inserting the adapters for `peft`; the
    record's description of the mode (adapter, rank, adapter parameters)."""
    if finetune == "full":
        return {"mode": "full"}
    backbone.requires_grad_(False)
    if finetune == "linear":
        return {"mode": "linear", "features": "cached once per run, eval mode, no augmentation"}
    rank = peft_rank or lift_rank(num_classes, max(len(vit_blocks(backbone)), 1))
    count = insert_adapters(backbone, peft, rank, name)
    return {"mode": "peft", "adapter": peft, "rank": rank, "adapter_parameters": count}


class FeatureSplit:
    """A split whose "images" are cached backbone features: the training stream of a linear probe."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features = features
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, index_batches: Sequence[tuple[int, torch.Tensor]], *, train: bool, device: torch.device
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        features, labels = self.features.to(device), self.labels.to(device)
        for _, indices in index_batches:
            indices = indices.to(device)
            yield features[indices], labels[indices]


class LinearProbe(nn.Module):
    """Trains the head of `model` on cached features. Its state is the whole model's (same keys), so
    checkpoints load into `model` and resume exactly; the backbone stays in eval mode."""

    def __init__(self, model: LongTailClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(features.device.type, enabled=False):
            return features, self.model.head(features)

    def train(self, mode: bool = True) -> LinearProbe:
        self.training = mode
        self.model.head.train(mode)
        return self

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.model.state_dict(*args, **kwargs)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        return self.model.load_state_dict(state_dict, strict=strict, assign=assign)
