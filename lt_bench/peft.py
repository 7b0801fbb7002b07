"""Parameter-efficient fine-tuning: LoRA and AdaptFormer adapters inserted into timm ViT blocks.

As LIFT (Shi et al., ICML 2024; official shijxcs/LIFT models/peft_modules.py and peft_vit.py) uses
them: LoRA (Hu et al., ICLR 2022) adds low-rank updates x·A·B / r to the query and value parts of
each block's fused qkv projection; AdaptFormer (Chen et al., NeurIPS 2022) adds a bottleneck
LayerNorm → down → ReLU → up, times a learnable scale, beside each block's MLP, reading the MLP
branch's input before its norm. Both start as the identity (B and the up projection are zero), so a
fresh adapter leaves the pretrained features unchanged.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.errors import UserError


def lift_rank(num_classes: int, depth: int) -> int:
    """LIFT's default bottleneck: 2^max(0, floor(log2(C / 2L))) (peft_vit.py), e.g. 4 for CIFAR-100
    on ViT-B/16's 12 blocks, 16 for ImageNet-LT."""
    return 2 ** max(0, int(math.log2(num_classes / (depth * 2))))


class LoRAQueryValue(nn.Module):
    """A block's fused qkv projection (its weights kept under the same names) plus LoRA updates of
    the query and value outputs: qkv(x) + [x·A_q·B_q, 0, x·A_v·B_v] / r."""

    def __init__(self, qkv: nn.Linear, rank: int) -> None:
        super().__init__()
        self.weight = qkv.weight
        self.bias = qkv.bias
        self.rank = rank
        width, part = qkv.in_features, qkv.out_features // 3
        self.query_down = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(width, rank), a=math.sqrt(5)))
        self.query_up = nn.Parameter(torch.zeros(rank, part))
        self.value_down = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(width, rank), a=math.sqrt(5)))
        self.value_up = nn.Parameter(torch.zeros(rank, part))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = x @ self.query_down @ self.query_up / self.rank
        value = x @ self.value_down @ self.value_up / self.rank
        return F.linear(x, self.weight, self.bias) + torch.cat([query, torch.zeros_like(query), value], -1)


class AdaptFormer(nn.Module):
    """The bottleneck s · up(ReLU(down(LayerNorm(x)))), s learnable from 1, up zero-initialised."""

    def __init__(self, width: int, bottleneck: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        self.scale = nn.Parameter(torch.ones(1))
        nn.init.kaiming_normal_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.relu(self.down(self.norm(x)))) * self.scale


class MlpWithAdaptFormer(nn.Module):
    """A block's MLP branch with the adapter beside it: mlp(norm(x)) + adapter(x). It takes the place
    of the block's `mlp`, its `norm2` moving inside (a LayerScale after the branch scales both)."""

    def __init__(self, norm: nn.Module, mlp: nn.Module, adapter: AdaptFormer) -> None:
        super().__init__()
        self.norm = norm
        self.mlp = mlp
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(x)) + self.adapter(x)


def vit_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The transformer blocks of a timm ViT (`blocks`, each with `attn.qkv`, `norm2` and `mlp`)."""
    blocks = getattr(backbone, "blocks", None)
    if not isinstance(blocks, nn.Sequential):
        return []
    return [
        block
        for block in blocks
        if isinstance(getattr(getattr(block, "attn", None), "qkv", None), nn.Linear)
        and hasattr(block, "norm2")
        and hasattr(block, "mlp")
    ]


def insert_adapters(backbone: nn.Module, adapter: str, rank: int, name: str) -> int:
    """Put `adapter` ("lora" or "adaptformer") of `rank` into every block of the timm ViT `backbone`
    (in place); the number of adapter parameters. A backbone without ViT blocks is a UserError."""
    blocks = vit_blocks(backbone)
    if not blocks:
        raise UserError(
            f"--finetune peft puts adapters into a timm ViT's blocks and backbone {name!r} has none; "
            "pass a ViT --backbone (e.g. vit_base_patch16_clip_224.openai) or --finetune full or linear"
        )
    width = blocks[0].attn.qkv.in_features
    if rank > width:  # a rank-r update of a width-wide layer has r <= width; more only costs memory
        raise UserError(
            f"--peft-rank {rank} is larger than backbone {name!r} allows (its blocks are {width} wide); "
            f"pass --peft-rank {width} or less"
        )
    added = []
    for block in blocks:
        if adapter == "lora":
            block.attn.qkv = LoRAQueryValue(block.attn.qkv, rank)
            added += [block.attn.qkv.query_down, block.attn.qkv.query_up]
            added += [block.attn.qkv.value_down, block.attn.qkv.value_up]
        else:
            bottleneck = AdaptFormer(block.attn.qkv.in_features, rank)
            block.mlp = MlpWithAdaptFormer(block.norm2, block.mlp, bottleneck)
            block.norm2 = nn.Identity()
            added += list(bottleneck.parameters())
    return sum(parameter.numel() for parameter in added)
