"""Training index streams: one seeded global stream per epoch, so every process can take its shard.

Class-balanced and square-root sampling follow decoupling (Kang et al., ICLR 2020): a class is
drawn with probability ∝ n_j^q (q = 0 class-balanced, q = 1/2 square-root, q = 1 instance),
then an image uniformly within it.
"""

from __future__ import annotations

import torch


def instance_balanced(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of the training set: every image once per epoch."""
    return torch.randperm(len(labels), generator=generator)


def class_power(labels: torch.Tensor, generator: torch.Generator, power: float) -> torch.Tensor:
    """len(labels) draws: class j with probability ∝ n_j^power, then an image of it uniformly."""
    labels = labels.long()
    counts = torch.bincount(labels).double()
    present = counts > 0
    class_weights = torch.where(present, counts.pow(power), torch.zeros_like(counts))
    classes = torch.multinomial(class_weights, len(labels), replacement=True, generator=generator)
    order = torch.argsort(labels, stable=True)
    starts = torch.cumsum(counts, 0).long() - counts.long()
    offsets = (torch.rand(len(labels), generator=generator, dtype=torch.float64) * counts[classes]).long()
    return order[starts[classes] + offsets]


def class_balanced(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Class-aware sampling: every class equally likely."""
    return class_power(labels, generator, 0.0)


def square_root(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Square-root sampling: class j with probability ∝ sqrt(n_j)."""
    return class_power(labels, generator, 0.5)
