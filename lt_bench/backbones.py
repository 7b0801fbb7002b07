"""Backbones come from timm; lt-bench registers the CIFAR ResNet-32 and a small CNN into it.

`create_backbone(name, in_chans)` is `timm.create_model(name, pretrained=False, num_classes=0,
in_chans=in_chans)`: a module mapping images to pooled features, with `num_features` set.
"""

from __future__ import annotations

import difflib

import timm
import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

from lt_bench.errors import UserError


class _FeatureNet(nn.Module):
    """Shared timm surface for lt-bench's own backbones: a body, global pooling and an optional fc."""

    def __init__(self, body: nn.Sequential, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.body = body
        self.num_features = num_features
        self.num_classes = num_classes
        self.fc: nn.Module = nn.Linear(num_features, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3))
        return pooled if pre_logits else self.fc(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()


class _BasicBlock(nn.Module):
    """He et al.'s CIFAR basic block; the shortcut zero-pads channels (option A) when shapes change."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.stride != 1 or self.extra_channels:
            shortcut = x[:, :, :: self.stride, :: self.stride]
            half = self.extra_channels // 2
            shortcut = F.pad(shortcut, (0, 0, 0, 0, half, self.extra_channels - half))
        return F.relu(out + shortcut)


@register_model
def resnet32_cifar(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> nn.Module:
    """ResNet-32 for 32×32 inputs (He et al. 2016 §4.2): 3 stages of 5 blocks, 16/32/64 channels, 64-d
    features after the final ReLU and global average pooling; the CIFAR-LT backbone of LDAM-DRW."""
    if pretrained:
        raise UserError("resnet32_cifar has no pretrained weights; train it from scratch")
    layers: list[nn.Module] = [nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    in_channels = 16
    for stage, channels in enumerate((16, 32, 64)):
        for block in range(5):
            layers.append(_BasicBlock(in_channels, channels, 2 if stage > 0 and block == 0 else 1))
            in_channels = channels
    model = _FeatureNet(nn.Sequential(*layers), 64, num_classes)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
    return model


@register_model
def lt_small_cnn(pretrained: bool = False, num_classes: int = 10, in_chans: int = 1, **kwargs) -> nn.Module:
    """A small CNN for 28×28 and 8×8 digits: 16/32/64-channel conv-BN-ReLU stages, 64-d features."""
    if pretrained:
        raise UserError("lt_small_cnn has no pretrained weights; train it from scratch")

    def stage(channels_in: int, channels_out: int) -> list[nn.Module]:
        return [
            nn.Conv2d(channels_in, channels_out, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels_out),
            nn.ReLU(),
        ]

    body = nn.Sequential(
        *stage(in_chans, 16),
        nn.MaxPool2d(2, ceil_mode=True),
        *stage(16, 32),
        nn.MaxPool2d(2, ceil_mode=True),
        *stage(32, 64),
    )
    return _FeatureNet(body, 64, num_classes)


def create_backbone(name: str, in_chans: int) -> nn.Module:
    """A timm model without classifier (`num_classes=0`): images → pooled features."""
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UserError(
            f"unknown backbone {name!r}.{hint} Any timm model name works; see `lt-bench list backbones`"
        )
    return timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)


def accelerate(
    model: nn.Module, *, channels_last: bool, compile: bool, device: torch.device | None = None
) -> nn.Module:
    """Speed options that keep the model's parameters and state_dict keys: channels_last memory
    format (when asked, and by default for a convolutional backbone on CUDA, where cuDNN's NHWC
    kernels are the fast ones), and the backbone compiled in place by torch.compile."""
    on_cuda = device is not None and device.type == "cuda"
    if channels_last or (on_cuda and is_convolutional(model.backbone)):
        model.to(memory_format=torch.channels_last)
    if compile:
        model.backbone.compile()
    return model


def is_convolutional(backbone: nn.Module) -> bool:
    """More 2-d convolutions than a vision transformer's one patch embedding."""
    return sum(isinstance(module, nn.Conv2d) for module in backbone.modules()) > 1


class LongTailClassifier(nn.Module):
    """A backbone producing features and a method's head producing logits from them.

    Mixed precision covers the backbone alone: its features leave it as fp32 and the head runs with
    autocast off, so the heads (cosine and TDE's normalised multi-head divide by norms), the losses
    computed from these logits, TDE's moving average and the metrics all see full precision, and no
    method needs its own precision handling. The head's share of the compute is negligible.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone's features in fp32 (it runs in the precision of the active autocast)."""
        return self.backbone(images).float()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(images)
        with torch.autocast(features.device.type, enabled=False):
            return features, self.head(features)
