"""Instance, class-balanced and square-root sampling: one seeded global index stream per epoch."""

from __future__ import annotations

import pytest
import torch

from lt_bench.data.samplers import class_balanced, instance_balanced, square_root

COUNTS = (4000, 1000, 250, 40)


def _labels() -> torch.Tensor:
    """Labels with COUNTS images per class, in a shuffled order (samplers must not assume sorted labels)."""
    labels = torch.repeat_interleave(torch.arange(len(COUNTS)), torch.tensor(COUNTS))
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(5))]


def _stream(sampler, labels: torch.Tensor, epochs: int) -> torch.Tensor:
    return torch.cat([sampler(labels, torch.Generator().manual_seed(epoch)) for epoch in range(epochs)])


def test_instance_balanced_visits_every_image_once_per_epoch() -> None:
    labels = _labels()
    order = instance_balanced(labels, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(len(labels)))
    assert torch.equal(order, instance_balanced(labels, torch.Generator().manual_seed(0)))
    assert not torch.equal(order, instance_balanced(labels, torch.Generator().manual_seed(1)))


@pytest.mark.parametrize(
    ("sampler", "expected"),
    [
        (class_balanced, [1 / 4] * 4),
        # sqrt(4000) : sqrt(1000) : sqrt(250) : sqrt(40) = 20 : 10 : 5 : 2
        (square_root, [20 / 37, 10 / 37, 5 / 37, 2 / 37]),
    ],
)
def test_class_frequencies_follow_the_power_of_the_counts(sampler, expected: list[float]) -> None:
    labels = _labels()
    stream = _stream(sampler, labels, epochs=20)
    assert len(stream) == 20 * len(labels)
    frequencies = torch.bincount(labels[stream], minlength=4).double() / len(stream)
    # 105,800 draws: one standard deviation of a frequency is at most 0.0016.
    assert frequencies.tolist() == pytest.approx(expected, abs=0.01)


def test_images_within_a_class_are_drawn_uniformly() -> None:
    labels = _labels()
    stream = _stream(class_balanced, labels, epochs=20)
    tail = torch.nonzero(labels == 3).flatten()
    hits = torch.bincount(stream, minlength=len(labels))[tail].double()
    expected = 20 * len(labels) / 4 / 40  # 661.25 draws per tail image
    assert hits.min() > expected - 5 * expected**0.5 and hits.max() < expected + 5 * expected**0.5


def test_the_stream_depends_only_on_the_seed_and_skips_empty_classes() -> None:
    labels = torch.tensor([0, 2, 2, 0, 2, 3])  # class 1 has no images
    first = class_balanced(labels, torch.Generator().manual_seed(3))
    assert torch.equal(first, class_balanced(labels, torch.Generator().manual_seed(3)))
    drawn = labels[_stream(square_root, labels, epochs=200)]
    assert set(drawn.tolist()) == {0, 2, 3}
