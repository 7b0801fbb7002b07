"""Learning-rate schedules against the values of the published recipes."""

import math

import pytest

from lt_bench.schedule import learning_rate

# CIFAR-LT recipe (LDAM-DRW): lr 0.1, 5 warm-up epochs, ×0.01 at epoch 160 and again at 180.
CIFAR = dict(
    base_lr=0.1, epochs=200, schedule="multistep", warmup_epochs=5, milestones=(160, 180), lr_decay=0.01
)


@pytest.mark.parametrize(
    "epoch, expected",
    [
        (0, 0.02),
        (1, 0.04),
        (4, 0.1),
        (5, 0.1),
        (159, 0.1),
        (160, 1e-3),
        (179, 1e-3),
        (180, 1e-5),
        (199, 1e-5),
    ],
)
def test_cifar_warm_up_and_steps(epoch, expected):
    assert learning_rate(epoch, **CIFAR) == pytest.approx(expected)


def test_cosine_falls_from_the_base_rate_along_half_a_period():
    # 0.2·(1 + cos(π·e/90))/2: the ImageNet-LT recipe
    rates = [learning_rate(e, base_lr=0.2, epochs=90, schedule="cosine") for e in (0, 45, 60, 89)]
    assert rates[0] == pytest.approx(0.2)
    assert rates[1] == pytest.approx(0.1)
    assert rates[2] == pytest.approx(0.1 * (1 + math.cos(2 * math.pi / 3)))  # 0.05
    assert 0 < rates[3] < 1e-3


def test_cosine_after_warm_up_starts_at_the_base_rate():
    assert learning_rate(1, base_lr=0.1, epochs=12, schedule="cosine", warmup_epochs=2) == pytest.approx(0.1)
    assert learning_rate(2, base_lr=0.1, epochs=12, schedule="cosine", warmup_epochs=2) == pytest.approx(0.1)
    assert learning_rate(7, base_lr=0.1, epochs=12, schedule="cosine", warmup_epochs=2) == pytest.approx(0.05)
