"""A third-party lt-bench plugin that uses the contract's newer hooks, installed in tests through an
entry point (tests/test_plugin_hooks.py); each method keeps a tally of what the core made it do in its
state, so a finished run's checkpoint shows that every hook acted."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.method import Method, MixedBatch

MAX_ROW_NORM = 0.5


class RareMixupWithGroups(Method):
    """Mixup with a batch of the rarest class (p = ½), undecayed biases, classifier rows capped at ½."""

    description = "mixup with the rarest class, per-group decay, max-norm head (hook demo plugin)"

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.tally = {"mixed_batches": 0, "mixed_losses": 0, "second_classes": []}

    def mixing_sample_order(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        counts = torch.bincount(labels)
        rarest = int(counts.masked_fill(counts == 0, len(labels) + 1).argmin())
        pool = (labels == rarest).nonzero().flatten()
        return pool[torch.randint(len(pool), (len(labels),), generator=generator)]

    def mix_batch(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        second: tuple[torch.Tensor, torch.Tensor] | None,
        epoch: int,
        rng: np.random.Generator,
    ) -> MixedBatch | None:
        if rng.random() < 0.5:
            return None
        others, other_targets = second
        share = float(rng.uniform(0.5, 1.0))
        self.tally["mixed_batches"] += 1
        classes = set(self.tally["second_classes"]) | set(other_targets.tolist())
        self.tally["second_classes"] = sorted(classes)
        return MixedBatch(share * images + (1 - share) * others, targets, other_targets, share)

    def mixed_loss(self, logits: torch.Tensor, mixed: MixedBatch) -> torch.Tensor:
        self.tally["mixed_losses"] += 1
        return super().mixed_loss(logits, mixed)

    def parameter_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        biases = [p for name, p in named if name.endswith("bias")]
        others = [p for name, p in named if not name.endswith("bias")]
        return [{"params": biases, "weight_decay": 0.0}, {"params": others, "weight_decay": 2 * weight_decay}]

    def on_step_end(self, model: nn.Module) -> None:
        weight = model.head.weight
        norms = weight.norm(dim=1, keepdim=True)
        weight.copy_(torch.where(norms > MAX_ROW_NORM, weight * (MAX_ROW_NORM / norms), weight))

    def state_dict(self) -> dict[str, Any]:
        return {"tally": dict(self.tally)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tally = dict(state["tally"])


class TwoViewAgreement(Method):
    """CE on two augmented views plus ½·(1 − cos) between the views' features."""

    description = "CE on two views + feature agreement (hook demo plugin)"
    views = 2

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.tally = {"views_per_image": 0.0, "steps_with_different_views": 0}

    def loss_with_features(
        self, logits: torch.Tensor, features: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        first, second = features.chunk(2)
        self.tally["views_per_image"] = len(features) / len(targets)
        self.tally["steps_with_different_views"] += int(not torch.equal(first, second))
        agreement = 1.0 - F.cosine_similarity(first, second, dim=1).mean()
        return F.cross_entropy(logits, targets.repeat(2)) + 0.5 * agreement

    def state_dict(self) -> dict[str, Any]:
        return {"tally": dict(self.tally)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tally = dict(state["tally"])
