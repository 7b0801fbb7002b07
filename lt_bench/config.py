"""A run's fully resolved configuration: the dataset recipe, overridden by what the user passed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any

from lt_bench.data.base import DATASETS, Recipe
from lt_bench.errors import UserError
from lt_bench.protocol import PROTOCOLS

SCHEDULES = ("cosine", "multistep")
SELECTIONS = ("last", "best-val")
# Fields that say where or how a run executes, not what it computes: not part of a run's identity.
PLACEMENT_FIELDS = (
    "data_root",
    "output",
    "device",
    "download",
    "num_workers",
    "checkpoint_seconds",
    "channels_last",
    "compile",
    "threads",
)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result, plus where it reads and writes."""

    method: str
    dataset: str
    backbone: str
    epochs: int
    batch_size: int  # the global batch
    lr: float
    weight_decay: float
    momentum: float = 0.9
    schedule: str = "cosine"
    warmup_epochs: int = 0
    milestones: tuple[int, ...] = ()
    lr_decay: float = 0.1
    nesterov: bool = False
    warmup_start: float = 0.0
    zero_init_last: bool = True
    select: str = "last"
    protocol: str = "shared"
    custom_lists: bool = False  # split lists other than the published ones (their digest is recorded)
    seed: int = 0
    data_seed: int = 0
    imbalance_ratio: float | None = None
    knobs: dict[str, float] = field(default_factory=dict)  # fixed test-time knobs, e.g. {"alpha": 2.0}
    data_root: str | None = None
    output: str = "results"
    device: str = "cpu"
    download: bool = False
    num_workers: int = 0
    checkpoint_seconds: float = 120.0  # mid-epoch checkpoint interval (every epoch end checkpoints too)
    channels_last: bool = False  # speed only: the model in channels_last memory format
    compile: bool = False  # speed only: the backbone under torch.compile
    threads: int | None = None  # CPU threads of torch; None: the cores this process may use (at run start)

    def identity(self) -> dict[str, Any]:
        """The fields that decide the result (placement fields left out)."""
        values = dataclasses.asdict(self)
        for name in PLACEMENT_FIELDS:
            values.pop(name)
        return values

    @property
    def run_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.dataset}-{self.method}-{self.backbone}-seed{self.seed}-{digest}"

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["milestones"] = list(self.milestones)
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        return cls(**{**values, "milestones": tuple(values.get("milestones", ()))})

    def replace(self, **changes: Any) -> RunConfig:
        return dataclasses.replace(self, **changes)


def resolve_config(method: str, dataset: str, **overrides: Any) -> RunConfig:
    """The dataset's recipe with every non-None override applied, validated.

    A batch size different from the recipe's scales the recipe's learning rate linearly
    (Goyal et al. 2017) unless `lr` is given too.
    """
    source = DATASETS.get(dataset)
    recipe: Recipe = source.recipe
    given = {name: value for name, value in overrides.items() if value is not None}
    values = {f.name: getattr(recipe, f.name) for f in dataclasses.fields(Recipe)}
    note = None
    if "batch_size" in given and "lr" not in given and given["batch_size"] != recipe.batch_size:
        given["lr"] = recipe.lr * given["batch_size"] / recipe.batch_size
        note = (
            f"{dataset}: lr {recipe.lr:g} × batch {given['batch_size']}/{recipe.batch_size} = "
            f"{given['lr']:g} (recipe lr scaled linearly with the global batch; --lr sets it)"
        )
    values.update(given)
    values["milestones"] = tuple(values.get("milestones", ()))
    if values.get("imbalance_ratio") is None:
        values["imbalance_ratio"] = source.default_imbalance_ratio
    config = RunConfig(method=method, dataset=dataset, **values)
    validate(config)
    if note:  # only for a configuration that will run
        print(note, file=sys.stderr)
    return config


def validate(config: RunConfig) -> None:
    """Raise a one-line UserError for impossible values."""
    checks = [
        (config.epochs >= 1, f"--epochs must be at least 1, got {config.epochs}"),
        (config.batch_size >= 1, f"--batch-size must be at least 1, got {config.batch_size}"),
        (_positive(config.lr), f"--lr must be a positive number, got {config.lr}"),
        (_non_negative(config.weight_decay), f"--weight-decay must be >= 0, got {config.weight_decay}"),
        (
            _non_negative(config.momentum) and config.momentum < 1,
            f"--momentum must be in [0, 1), got {config.momentum}",
        ),
        (
            config.schedule in SCHEDULES,
            f"--schedule must be one of {', '.join(SCHEDULES)}, got {config.schedule!r}",
        ),
        (
            0 <= config.warmup_epochs < config.epochs or config.warmup_epochs == 0,
            f"--warmup-epochs must be below --epochs ({config.epochs}), got {config.warmup_epochs}",
        ),
        (
            config.imbalance_ratio is None
            or (_positive(config.imbalance_ratio) and config.imbalance_ratio >= 1),
            f"--imbalance-ratio must be a number >= 1, got {config.imbalance_ratio}",
        ),
        (
            0 <= config.seed < 2**63 and 0 <= config.data_seed < 2**63,
            "--seed and --data-seed must be in [0, 2**63)",
        ),
        (_positive(config.lr_decay), f"--lr-decay must be a positive number, got {config.lr_decay}"),
        (
            0 <= config.warmup_start <= 1,
            f"--warmup-start must be a fraction of the lr in [0, 1], got {config.warmup_start}",
        ),
        (
            config.select in SELECTIONS,
            f"--select must be one of {', '.join(SELECTIONS)}, got {config.select!r}",
        ),
        (
            config.protocol in PROTOCOLS,
            f"--protocol must be one of {', '.join(PROTOCOLS)}, got {config.protocol!r}",
        ),
        (
            _non_negative(config.checkpoint_seconds),
            f"--checkpoint-every must be >= 0 seconds, got {config.checkpoint_seconds}",
        ),
        (
            isinstance(config.output, str) and config.output.strip() != "",
            f"--output must name a results folder, got {config.output!r}",
        ),
        (config.num_workers >= 0, f"--num-workers must be >= 0, got {config.num_workers}"),
        (
            config.threads is None or config.threads >= 1,
            f"--threads must be at least 1, got {config.threads}",
        ),
        (
            config.schedule != "multistep" or _milestones_fit(config.milestones, config.epochs),
            f"--milestones must be increasing epochs below --epochs {config.epochs}, got "
            f"{' '.join(map(str, config.milestones))}; pass --milestones with values below "
            f"{config.epochs}, or --milestones alone for none",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    for name, value in config.knobs.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"--knob {name} must be a finite number, got {value!r}")
    if config.knobs:
        _check_knob_ranges(config)


def _milestones_fit(milestones: tuple[int, ...], epochs: int) -> bool:
    """Strictly increasing 0-based epochs, each a real epoch of the run."""
    return all(0 <= m < epochs for m in milestones) and list(milestones) == sorted(set(milestones))


def _check_knob_ranges(config: RunConfig) -> None:
    """Fixed knobs within the bounds the method declares (`Method.test_time_knob_ranges`)."""
    from lt_bench.method import METHODS

    ranges = METHODS.get(config.method).test_time_knob_ranges
    for name, value in config.knobs.items():
        low, high = ranges.get(name, (-math.inf, math.inf))
        if not low <= value <= high:
            bounds = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
            raise UserError(f"--knob {name} must be {bounds} for method {config.method!r}, got {value:g}")


def _positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _non_negative(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
