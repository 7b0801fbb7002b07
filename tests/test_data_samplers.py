"""Instance, class-balanced, square-root and class-aware sampling: one seeded index stream per epoch."""

from __future__ import annotations

import pytest
import torch

from lt_bench.data.profile import long_tailed_counts
from lt_bench.data.samplers import class_aware, class_balanced, instance_balanced, square_root

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


def test_class_aware_order_follows_the_rules_by_hand() -> None:
    # Class 0: images 0, 2, 5, 6, 8, 9; class 1: images 1, 4, 7; class 2: image 3. Two images a visit:
    # ceil(10 / 2) = 5 visits.
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 0, 1, 0, 0])
    # The generator's draws, in the order the sampler takes them; a pass visits its items in the
    # order that sorts its row of uniforms.
    draws = torch.Generator().manual_seed(0)
    class_passes = torch.rand(2, 3, generator=draws)  # 5 visits: two passes over the 3 classes
    assert class_passes.argsort(dim=1).tolist() == [[2, 0, 1], [0, 1, 2]]  # visits: 2, 0, 1, 0, 1
    class_0 = torch.rand(1, 6, generator=draws)  # 2 visits, 4 images: one pass over its 6
    assert class_0.argsort(dim=1).tolist() == [[4, 5, 2, 0, 3, 1]]  # images 8, 9, 5, 0, (6, 2)
    class_1 = torch.rand(2, 3, generator=draws)  # 2 visits, 4 images: two passes over its 3
    assert class_1.argsort(dim=1).tolist() == [[0, 1, 2], [0, 1, 2]]  # images 1, 4, 7, 1, (4, 7)
    # class 2: 1 visit of 2 images from its single image: 3, 3.
    expected = [3, 3] + [8, 9] + [1, 4] + [5, 0] + [7, 1]
    order = class_aware(labels, torch.Generator().manual_seed(0), images_per_visit=2)
    assert order.tolist() == expected


def _mnist_lt_labels() -> torch.Tensor:
    """The mnist_lt training labels (400 down to 4 per class, IR 100: 988 images), shuffled."""
    counts = torch.tensor(long_tailed_counts(400, 10, 100.0))
    labels = torch.repeat_interleave(torch.arange(10), counts)
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]


def test_class_aware_draws_every_class_nearly_equally_often_in_an_epoch() -> None:
    labels = _mnist_lt_labels()
    assert len(labels) == 988
    spreads = {}
    for sampler in (class_aware, class_balanced):
        per_epoch = [
            torch.bincount(
                labels[sampler(labels, torch.Generator().manual_seed(epoch))], minlength=10
            ).double()
            for epoch in range(20)
        ]
        spreads[sampler] = torch.stack(per_epoch).std(dim=1)
    # 247 visits of 4 images: 24 or 25 visits a class (96 or 100 images, the last visit cut to 988).
    assert spreads[class_aware].max() <= 4
    # i.i.d. draws: a class count is Binomial(988, 1/10), standard deviation 9.4
    assert spreads[class_balanced].mean() > 3 * spreads[class_aware].mean()


def test_class_aware_uses_every_image_of_a_class_once_before_repeating_one() -> None:
    labels = _mnist_lt_labels()
    order = class_aware(labels, torch.Generator().manual_seed(7))
    assert len(order) == len(labels)
    for label in range(10):
        images = set(torch.nonzero(labels == label).flatten().tolist())
        # ~100 draws a class: 25 full passes over the 4 tail images, a quarter of one over the 400 head ones
        passes = order[labels[order] == label].split(len(images))
        assert all(len(set(chunk.tolist())) == len(chunk) for chunk in passes)
        assert all(set(chunk.tolist()) == images for chunk in passes if len(chunk) == len(images))


def test_class_aware_visits_a_class_for_consecutive_draws_and_skips_empty_classes() -> None:
    labels = torch.tensor([0, 2, 2, 0, 2, 3, 3, 3, 0, 2, 0, 3])  # class 1 has no images
    order = class_aware(labels, torch.Generator().manual_seed(1), images_per_visit=4)
    visits = labels[order].view(3, 4)
    assert all(len(set(visit.tolist())) == 1 for visit in visits)  # four images of one class a visit
    assert sorted(visits[:, 0].tolist()) == [0, 2, 3]  # one pass over the classes present
    assert torch.equal(order, class_aware(labels, torch.Generator().manual_seed(1), images_per_visit=4))
