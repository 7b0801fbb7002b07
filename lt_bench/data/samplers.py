"""Training index streams: one seeded global stream per epoch, so every process can take its shard.

Class-balanced and square-root sampling follow decoupling (Kang et al., ICLR 2020): a class is
drawn with probability ∝ n_j^q (q = 0 class-balanced, q = 1/2 square-root, q = 1 instance),
then an image uniformly within it. Class-aware sampling follows their official sampler instead
(facebookresearch/classifier-balancing data/ClassAwareSampler.py): classes and images in turn.
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


def class_aware(labels: torch.Tensor, generator: torch.Generator, images_per_visit: int = 4) -> torch.Tensor:
    """len(labels) draws visiting the classes in turn, as decoupling's ClassAwareSampler: the classes
    present in a cycling list reshuffled after each full pass; each visit takes the next
    `images_per_visit` images of that class's own cycling list, reshuffled after each pass over it.

    The official sampler keeps its cycles across epochs; here each epoch's stream starts them afresh.
    """
    labels = labels.long()
    counts = torch.bincount(labels)
    classes = torch.nonzero(counts).flatten()
    visits = -(-len(labels) // images_per_visit)
    visited = _cycle(classes, visits, generator)
    images_by_class = torch.argsort(labels, stable=True).split(counts[classes].tolist())
    visits_per_class = torch.bincount(visited, minlength=len(counts))[classes]
    visits_by_class = torch.argsort(visited, stable=True).split(visits_per_class.tolist())
    # The r-th visit of a class takes items r·k … r·k+k−1 of that class's cycling list of images.
    stream = torch.empty(visits, images_per_visit, dtype=torch.long)
    for images, at in zip(images_by_class, visits_by_class, strict=True):
        stream[at] = _cycle(images, len(at) * images_per_visit, generator).view(len(at), images_per_visit)
    return stream.flatten()[: len(labels)]


def _cycle(items: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """The first `length` entries of an endless walk through `items`, reshuffled before every pass:
    pass p visits them in the order that sorts the p-th row of a uniform draw of shape (passes, len)."""
    passes = -(-length // len(items))
    orders = torch.rand(passes, len(items), generator=generator).argsort(dim=1)
    return items[orders.flatten()[:length]]


def repeated(repeat_factors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image ⌊r⌋ times and once more with probability r − ⌊r⌋, shuffled: the epoch of repeat factor
    sampling with stochastic rounding (Detectron2's `RepeatFactorTrainingSampler`)."""
    factors = repeat_factors.double()
    whole = factors.floor()
    copies = whole + (torch.rand(len(factors), generator=generator, dtype=torch.float64) < factors - whole)
    indices = torch.repeat_interleave(torch.arange(len(factors)), copies.long())
    return indices[torch.randperm(len(indices), generator=generator)]
