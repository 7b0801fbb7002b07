"""rfs, federated_loss and seesaw: their formulas against hand-worked values, and their box heads."""

from __future__ import annotations

import math

import pytest
import torch

from lt_bench.data.samplers import repeated
from lt_bench.method import METHODS, MethodContext
from lt_bench.methods.federated_loss import federated_bce, federated_classes
from lt_bench.methods.rfs import category_repeat_factors, image_repeat_factors_from
from lt_bench.methods.seesaw import seesaw_logits


def _context(dataset: str = "mnist_lt_seg", counts: tuple[int, ...] = (200, 9, 2)) -> MethodContext:
    return MethodContext(dataset, len(counts), counts, 4, 1, 1, 0.02)


def test_repeat_factors_by_hand() -> None:
    # LVIS: t = 0.001, 100,000 images, a category in 10 of them: sqrt(0.001 · 100000 / 10) = sqrt(10).
    assert category_repeat_factors([10, 100, 5000, 0], 100_000, 0.001) == pytest.approx(
        [math.sqrt(10), 1, 1, 1]
    )
    # t·N = 100: sqrt(100/200) < 1 → 1, sqrt(100/9), sqrt(100/2).
    factors = category_repeat_factors([200, 9, 2], 244, 100 / 244)
    assert factors == pytest.approx([1.0, 10 / 3, math.sqrt(50)])
    assert image_repeat_factors_from([{1, 3}, {1}, set()], factors) == pytest.approx([math.sqrt(50), 1, 1])


def test_rfs_threshold_is_lvis_on_lvis_and_keeps_100_images_elsewhere() -> None:
    images = [{1}] * 200 + [{1, 2}] * 9 + [{3}] * 2 + [set()] * 33  # 244 images
    offline = METHODS.get("rfs")(_context()).image_repeat_factors(images)
    assert (
        offline[0] == 1.0 and offline[200] == pytest.approx(10 / 3) and offline[209] == pytest.approx(50**0.5)
    )
    lvis = METHODS.get("rfs")(_context("lvis_v1")).image_repeat_factors(images)
    assert lvis[209] == pytest.approx(1.0)  # 2 of 244 images is far above t = 0.001


def test_stochastic_rounding_repeats_each_image_floor_or_ceil_times() -> None:
    generator = torch.Generator().manual_seed(0)
    totals = torch.zeros(3)
    for _ in range(2000):
        epoch = repeated(torch.tensor([1.0, 2.5, 0.0]), generator)
        counts = torch.bincount(epoch, minlength=3)
        assert counts[0] == 1 and counts[1] in (2, 3) and counts[2] == 0
        totals += counts
    assert totals[1] / 2000 == pytest.approx(2.5, abs=0.05)


def test_federated_classes_keep_the_present_and_draw_by_weight() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        classes = federated_classes(
            torch.tensor([0, -1, 0]), torch.tensor([1.0, 1.0, 0.0, 1.0]), 3, generator
        )
        assert sorted(classes.tolist()) == [0, 1, 3]  # a weight of 0 is never drawn
    all_classes = federated_classes(torch.tensor([2]), torch.ones(4), 50, generator)
    assert sorted(all_classes.tolist()) == [0, 1, 2, 3]


def test_federated_bce_by_hand() -> None:
    # Zero logits: every BCE term is ln 2; classes {1, 2} of 2 samples: 4 ln 2 / 2. Column 0 is not judged.
    logits = torch.zeros(2, 3)
    logits[:, 0] = 5.0
    loss = federated_bce(logits, torch.tensor([1, -1]), torch.tensor([1, 2]))
    assert loss.item() == pytest.approx(2 * math.log(2))


def test_federated_loss_trains_category_columns_only_and_scores_by_sigmoid() -> None:
    method = METHODS.get("federated_loss")(_context())
    logits = torch.zeros(2, 4, requires_grad=True)  # background + 3 categories
    method.roi_loss(logits, torch.tensor([0, 2])).backward()
    assert logits.grad[:, 0].abs().sum() == 0 and logits.grad[:, 1:].abs().sum() > 0
    classifier = torch.nn.Linear(4, 4)
    features = torch.randn(3, 4)
    assert torch.equal(method.roi_scores(classifier, features), torch.sigmoid(classifier(features)))


def test_seesaw_mitigation_by_hand() -> None:
    # Class 0 seen 10 times, class 1 5 times, class 2 20 times; uniform scores (no compensation):
    # only the rarer class 1 is damped: z_1 + 0.8·ln(5/10).
    shifted = seesaw_logits(torch.zeros(1, 3), torch.tensor([0]), torch.tensor([10.0, 5.0, 20.0]))
    assert shifted.tolist()[0] == pytest.approx([0.0, 0.8 * math.log(0.5), 0.0])


def test_seesaw_compensation_by_hand() -> None:
    # Equal counts; p = softmax(0, ln 2, 0) = (1/4, 1/2, 1/4): class 1 outscores the target 0 by 2, so
    # its logit gains ln 2^2: (0, ln 8, 0), and the cross-entropy is ln 10.
    logits = torch.tensor([[0.0, math.log(2.0), 0.0]])
    shifted = seesaw_logits(logits, torch.tensor([0]), torch.ones(3))
    assert shifted.tolist()[0] == pytest.approx([0.0, math.log(8.0), 0.0])
    method = METHODS.get("seesaw")(_context(counts=(1, 1, 1)))
    method.seen = torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)  # the loss counts the target first
    assert method.loss(logits, torch.tensor([0])).item() == pytest.approx(math.log(10.0))


def test_seesaw_box_head_objectness_and_scores() -> None:
    method = METHODS.get("seesaw")(_context())
    classifier = method.build_box_classifier()
    assert classifier.out_features == 3 + 2
    # Objectness logits (fg, bg) = (ln 3, 0): P(fg) = 3/4; categories uniform: each 1/4 of 3/4.
    with torch.no_grad():
        classifier.weight.zero_()
        classifier.bias.copy_(torch.tensor([0.0, 0.0, 0.0, math.log(3.0), 0.0]))
    scores = method.roi_scores(classifier, torch.randn(2, 4))
    assert scores.tolist()[0] == pytest.approx([0.25, 0.25, 0.25, 0.25])
    # Background RoIs train objectness only; the category counts see the foreground RoIs only.
    loss = method.roi_loss(torch.zeros(4, 5), torch.tensor([0, 0, 1, 3]))
    assert method.seen.tolist() == [1.0, 0.0, 1.0]
    assert loss.item() == pytest.approx((4 * math.log(2) + 2 * math.log(3)) / 4)
