"""Backbones come from timm; lt-bench registers the CIFAR ResNet-32s and a small CNN into it.

`create_backbone(name, in_chans)` is `timm.create_model(name, num_classes=0, in_chans=in_chans)`: a
module mapping images to pooled features, with `num_features` set; optionally with timm's published
weights or a local weights file, and with the last BatchNorm of each residual block at 0 or 1.
"""

from __future__ import annotations

import difflib
import hashlib
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import timm
import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

from lt_bench.bounded_read import WEIGHTS_LIMIT, open_regular
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


def _cifar_resnet_layers(in_chans: int, blocks_per_stage: tuple[int, int, int]) -> list[nn.Module]:
    """He et al.'s CIFAR ResNet (2016 §4.2): a 3×3 conv to 16 channels with BN and ReLU, then three
    stages of basic blocks with 16/32/64 channels, the second and third starting with stride 2."""
    layers: list[nn.Module] = [nn.Conv2d(in_chans, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    in_channels = 16
    for stage, (channels, blocks) in enumerate(zip((16, 32, 64), blocks_per_stage, strict=True)):
        for block in range(blocks):
            layers.append(_BasicBlock(in_channels, channels, 2 if stage > 0 and block == 0 else 1))
            in_channels = channels
    return layers


def _kaiming_normal_init(model: nn.Module) -> nn.Module:
    """Kaiming-normal conv and linear weights (BatchNorm keeps weight 1, bias 0), as the official
    CIFAR ResNets of LDAM-DRW (models/resnet_cifar.py) and BBN (lib/backbone/resnet_cifar.py) do."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight)
    return model


class _ParallelBlocks(nn.Module):
    """BBN's two last residual blocks side by side on the same input, outputs concatenated along the
    channels: the conventional-learning branch first, then the re-balancing branch."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conventional = _BasicBlock(channels, channels, 1)
        self.rebalancing = _BasicBlock(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.conventional(x), self.rebalancing(x)), dim=1)


@register_model
def resnet32_cifar(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> nn.Module:
    """ResNet-32 for 32×32 inputs (He et al. 2016 §4.2): 3 stages of 5 blocks, 16/32/64 channels, 64-d
    features after the final ReLU and global average pooling; the CIFAR-LT backbone of LDAM-DRW."""
    if pretrained:
        raise UserError("resnet32_cifar has no pretrained weights; train it from scratch")
    body = nn.Sequential(*_cifar_resnet_layers(in_chans, (5, 5, 5)))
    return _kaiming_normal_init(_FeatureNet(body, 64, num_classes))


@register_model
def resnet32_bbn(pretrained: bool = False, num_classes: int = 10, in_chans: int = 3, **kwargs) -> nn.Module:
    """BBN's two-branch ResNet-32 (Zhou et al. CVPR 2020; Megvii-Nanjing/BBN
    lib/backbone/resnet_cifar.py `bbn_res32_cifar`), the CIFAR-LT backbone of causal TDE
    (KaihuaTang/Long-Tailed-Recognition.pytorch classification/models/ResNet32Feature.py): stages of
    5, 5 and 4 blocks, then two parallel 64-channel blocks pooled and concatenated into 128-d features."""
    if pretrained:
        raise UserError("resnet32_bbn has no pretrained weights; train it from scratch")
    body = nn.Sequential(*_cifar_resnet_layers(in_chans, (5, 5, 4)), _ParallelBlocks(64))
    return _kaiming_normal_init(_FeatureNet(body, 128, num_classes))


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


def check_backbone_name(name: str) -> None:
    """Raise a one-line UserError (with close names) unless timm knows the model `name`."""
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UserError(
            f"unknown backbone {name!r}.{hint} Any timm model name works; see `lt-bench list backbones`"
        )


def create_backbone(
    name: str,
    in_chans: int,
    *,
    zero_init_last: bool = True,
    pretrained: bool = False,
    pretrained_file: Path | None = None,
) -> nn.Module:
    """A timm model without classifier (`num_classes=0`): images → pooled features.

    `pretrained` loads timm's published weights, `pretrained_file` a local state dict (see
    `load_weights_file`); `zero_init_last` is timm's option for the last BatchNorm of each residual block.
    """
    check_backbone_name(name)
    if pretrained and pretrained_file is not None:
        raise UserError("--pretrained and --pretrained-file both give the initial weights: pass only one")
    if pretrained and not timm.is_model_pretrained(name):
        raise UserError(
            f"timm publishes no pretrained weights for backbone {name!r}: "
            "train it from scratch or pass --pretrained-file PATH"
        )
    try:
        model = _timm_model(name, in_chans, zero_init_last=zero_init_last, pretrained=pretrained)
    except OSError as error:  # huggingface_hub and torch.hub raise OSError subclasses when offline
        raise UserError(
            f"cannot download timm's pretrained weights for {name!r} ({type(error).__name__}); "
            "on a machine without network access pass --pretrained-file PATH instead"
        ) from error
    if pretrained_file is not None:
        load_weights_file(model, Path(pretrained_file), name)
    return model


def pretraining(
    backbone: nn.Module, *, pretrained: bool, weights_digest: str | None, declared_data: str | None = None
) -> dict[str, Any]:
    """The record's account of the backbone's initial weights: none (from scratch), timm's published
    weights (their tag, e.g. `openai` CLIP or `augreg_in21k`, and where timm fetches them; always
    external data), or a file, with the data it was trained on when declared ("same" or "external")."""
    if pretrained:
        settings = getattr(backbone, "pretrained_cfg", None) or {}
        source = settings.get("hf_hub_id") or settings.get("url") or None
        return {"weights": "timm", "tag": settings.get("tag") or None, "source": source, "data": "external"}
    if weights_digest is not None:
        return {
            "weights": "file",
            "digest": weights_digest,
            **({"data": declared_data} if declared_data else {}),
        }
    return {"weights": "none"}


def _timm_model(name: str, in_chans: int, *, zero_init_last: bool, pretrained: bool) -> nn.Module:
    """`timm.create_model` with `zero_init_last` for the models that take it (ResNet, ResNeXt, RegNet,
    ...): False starts each residual block's last BatchNorm weight at 1, as torchvision does."""
    options = dict(pretrained=pretrained, num_classes=0, in_chans=in_chans)
    try:
        return timm.create_model(name, zero_init_last=zero_init_last, **options)
    except TypeError as error:
        # Every timm entry point is `(pretrained, **kwargs)`, so only the call tells: the model has no
        # such option (ViT, ConvNeXt, ...) or its entry point sets it itself (regnetz_005: False).
        if "zero_init_last" not in str(error):
            raise
    return timm.create_model(name, **options)


def load_weights_file(model: nn.Module, path: Path, name: str) -> None:
    """Load a local state dict (plain, or under "state_dict" / "model"; `.safetensors` or a torch file)
    into `model`, leaving out the checkpoint's classifier; anything else that does not fit is an error."""
    state = _read_state_dict(path)
    expected = model.state_dict()
    # The checkpoint's classifier (e.g. an ImageNet fc) has no place in a num_classes=0 backbone.
    head = model.get_classifier()
    classifier = next(f"{prefix}." for prefix, module in model.named_modules() if module is head)
    state = {key: value for key, value in state.items() if key in expected or not key.startswith(classifier)}
    reshaped = [key for key, value in state.items() if key in expected and value.shape != expected[key].shape]
    result = model.load_state_dict({k: v for k, v in state.items() if k not in reshaped}, strict=False)
    misfits = {
        "missing": [key for key in result.missing_keys if key not in reshaped],
        "unexpected": result.unexpected_keys,
        "of another shape": reshaped,
    }
    problems = [f"{len(keys)} {kind} ({_first_few(keys)})" for kind, keys in misfits.items() if keys]
    if problems:
        raise UserError(f"weights file {path} does not fit backbone {name!r}: keys {'; '.join(problems)}")


WEIGHTS_FIX = "pass as --pretrained-file a state dict saved by torch.save or safetensors"


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, with DataParallel's "module." prefix removed."""
    if not path.exists():
        raise UserError(f"weights file {path} does not exist: check --pretrained-file")
    with open_regular(path, limit=WEIGHTS_LIMIT, fix=WEIGHTS_FIX) as handle:
        try:
            if path.suffix == ".safetensors":
                contents = safetensors.torch.load(handle.read())
            else:
                contents = torch.load(handle, map_location="cpu", weights_only=True)
        # torch's weights-only unpickler meets bytes that are no pickle with whatever its opcode
        # handling raises (KeyError, IndexError, ValueError, ...): all mean "not a weights file".
        except Exception as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"cannot read weights file {path}: {reason}; {WEIGHTS_FIX}") from error
    if isinstance(contents, dict):
        contents = next((contents[key] for key in ("state_dict", "model") if key in contents), contents)
    if not isinstance(contents, dict) or not all(isinstance(v, torch.Tensor) for v in contents.values()):
        raise UserError(
            f"weights file {path} holds no state dict of tensors (plain, or under 'state_dict' or "
            f"'model'); {WEIGHTS_FIX}"
        )
    return {key.removeprefix("module."): value for key, value in contents.items()}


def _first_few(keys: list[str], shown: int = 3) -> str:
    return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")


def file_digest(path: Path) -> str:
    """The first 12 hex digits of the file's sha256: names a weights file in a run's record."""
    digest = hashlib.sha256()
    with open_regular(path, limit=WEIGHTS_LIMIT, fix=WEIGHTS_FIX) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


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
