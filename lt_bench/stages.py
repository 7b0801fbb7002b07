"""The stages a run trains: a method's own, or a first stage's run and the method's second stage on its
own schedule (`Method.second_stage`), with the run's `--second-stage-*` overrides applied."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lt_bench.config import RunConfig
from lt_bench.method import METHODS, SecondStage


@dataclass(frozen=True)
class Stage:
    """One stage as it trains: the method whose loss it trains, its epochs, global batch, learning
    rate, weight decay and schedule (None for a stage that trains nothing)."""

    method: str
    epochs: int
    batch_size: int
    lr: float | None
    weight_decay: float | None
    schedule: str | None
    warmup_epochs: int = 0

    def describe(self) -> str:
        """One line for `lt-bench recipe`."""
        if not self.epochs:
            return f"{self.method}: trains nothing (post-hoc)"
        warmup = f", {self.warmup_epochs} warm-up epochs" if self.warmup_epochs else ""
        return (
            f"{self.method}: {self.epochs} epochs, batch {self.batch_size}, lr {self.lr:g}, "
            f"weight decay {self.weight_decay:g}, {self.schedule}{warmup}"
        )


def first_stage_config(config: RunConfig, first_stage: str) -> RunConfig:
    """The run whose finished model a second stage of `config` continues: the same run of `first_stage`,
    without the second stage's knobs and schedule, keeping the options that method declares (e.g.
    weight balancing's stage-one decay)."""
    declared = METHODS.get(first_stage).options
    return config.replace(
        method=first_stage,
        knobs={},
        method_options={name: value for name, value in config.method_options.items() if name in declared},
        second_stage_epochs=None,
        second_stage_lr=None,
        second_stage_weight_decay=None,
    )


def run_stages(config: RunConfig) -> list[Stage]:
    """The stages `config` trains, first to last: one for a single-stage method, two for a second stage."""
    method_class = METHODS.get(config.method)
    own = Stage(
        method=config.method,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        weight_decay=_first_set(method_class.weight_decay, config.weight_decay),
        schedule=config.schedule,
        warmup_epochs=config.warmup_epochs,
    )
    if method_class.first_stage is None:
        return [own]
    first = run_stages(first_stage_config(config, method_class.first_stage))
    return [*first, second_stage(config, method_class.second_stage)]


def second_stage(config: RunConfig, declared: SecondStage | None) -> Stage:
    """The second stage of `config`: the method's `declared` schedule, its lr scaled to the run's batch,
    each `--second-stage-*` value given replacing the declared one; no declaration trains nothing."""
    if declared is None:
        return Stage(config.method, 0, config.batch_size, None, None, None)
    lr = declared.lr * config.batch_size / declared.batch_size_for_lr
    return Stage(
        method=config.method,
        epochs=_first_set(config.second_stage_epochs, declared.epochs),
        batch_size=config.batch_size,
        lr=_first_set(config.second_stage_lr, lr),
        weight_decay=_first_set(config.second_stage_weight_decay, declared.weight_decay),
        schedule=declared.schedule,
    )


def stages_record(config: RunConfig) -> list[dict[str, object]]:
    """The record's `stages`: each stage's method, epochs, batch, lr, weight decay and schedule."""
    return [asdict(stage) for stage in run_stages(config)]


def _first_set(value: float | None, otherwise: float) -> float:
    return otherwise if value is None else value
