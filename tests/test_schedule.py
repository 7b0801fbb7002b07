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


# TDE's CIFAR-LT recipe (KaihuaTang/Long-Tailed-Recognition.pytorch, config/CIFAR100_LT/causal_norm_32.yaml,
# utils.py WarmupMultiStepLR, run_networks.py): lr 0.2, warm-up from lr/3 over 5 epochs, ×0.01 at the
# official epochs 120 and 160. The scheduler is stepped at the start of 1-based epoch E, so E runs with
# last_epoch = E and is decayed once E >= 120: 0-based epoch 119, hence milestones (119, 159) here.
TDE_CIFAR = dict(
    base_lr=0.2,
    epochs=200,
    schedule="multistep",
    warmup_epochs=5,
    warmup_start=1 / 3,
    milestones=(119, 159),
    lr_decay=0.01,
)


def test_warm_up_from_a_third_is_bbn_and_tde_warmup_multistep() -> None:
    # WarmupMultiStepLR(warmup_factor=1/3, warmup_epochs=5) stepped at the start of 1-based epoch E:
    # lr = 0.2·(1/3·(1 − E/5) + E/5) while E < 5, so E = 1 runs at 0.2·(1/3·0.8 + 0.2).
    rates = [learning_rate(epoch, **TDE_CIFAR) for epoch in range(6)]
    assert rates == pytest.approx([0.2 * (1 / 3 * (1 - E / 5) + E / 5) for E in (1, 2, 3, 4, 5)] + [0.2])
    assert rates[0] == pytest.approx(0.093333, abs=1e-6)


def test_warm_up_from_zero_is_bit_for_bit_ldam_drw() -> None:
    for epoch in range(5):
        assert learning_rate(epoch, **CIFAR, warmup_start=0.0) == 0.1 * (epoch + 1) / 5


@pytest.mark.parametrize(
    "epoch, expected",
    [
        (0, 0.093333),  # official epoch 1
        (4, 0.2),  # official epoch 5: the warm-up's end
        (5, 0.2),
        (118, 0.2),  # official epoch 119
        (119, 0.002),  # official epoch 120
        (158, 0.002),
        (159, 2e-5),  # official epoch 160
        (199, 2e-5),  # official epoch 200
    ],
)
def test_tde_cifar_schedule(epoch: int, expected: float) -> None:
    assert learning_rate(epoch, **TDE_CIFAR) == pytest.approx(expected, rel=1e-5)
