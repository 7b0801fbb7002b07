"""A run's fully resolved configuration: the dataset recipe, overridden by what the user passed."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lt_bench.errors import UserError
from lt_bench.protocol import PROTOCOLS

# RunConfig is read by the results commands (leaderboard, export, status), which must not import
# torch: what resolves or validates a configuration imports the dataset, precision and crop modules
# (all torch) in the function that needs them.

SCHEDULES = ("cosine", "multistep")
FINETUNE_MODES = ("full", "linear", "peft")  # what of the backbone trains: all, nothing, adapters
PEFT_ADAPTERS = ("lora", "adaptformer")
# Fine-tuning fields at these values stay out of a run's identity: runs from before they existed
# (all full fine-tuning) keep their run ids.
FINETUNE_DEFAULTS = {"finetune": "full", "peft": "adaptformer", "peft_rank": None}
# A second stage's own schedule replaced on the command line; unset (None: the method's declared
# `second_stage`) they stay out of a run's identity, so runs from before the options keep their ids.
SECOND_STAGE_FIELDS = ("second_stage_epochs", "second_stage_lr", "second_stage_weight_decay")
SELECTIONS = ("last", "best-val")
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:[0-9]+)?")  # --device values; cuda:N picks the Nth GPU
PRETRAINING_DATA = ("same", "external")  # what a --pretrained-file was trained on: this dataset or other data
# Fields that say where or how a run executes, not what it computes: not part of a run's identity.
PLACEMENT_FIELDS = (
    "data_root",
    "pretrained_file",  # where the weights are read from; their digest is part of the identity
    "output",
    "device",
    "download",
    "num_workers",
    "checkpoint_seconds",
    "channels_last",
    "compile",
    "val_every",  # validation passes for the training curve: they change no weight or random state
    "tensorboard",
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
    custom_lists: bool = False  # split lists other than the published ones
    lists_digest: str | None = None  # with custom_lists: a digest of the list files, so they name the run
    pretrained: bool = False  # start from timm's published weights of the backbone
    pretrained_digest: str | None = None  # digest of --pretrained-file's weights (the file names the run)
    pretraining_data: str | None = None  # "same" or "external": declared for a --pretrained-file
    finetune: str = "full"  # full, linear (frozen backbone, cached features) or peft (adapters only)
    peft: str = "adaptformer"  # with --finetune peft: the adapter inserted into each ViT block
    peft_rank: int | None = None  # the adapters' rank / bottleneck; None: LIFT's rule from classes, depth
    test_crops: int = 1  # 5 or 10: the test logits averaged over crops (and mirror images)
    precision: str = "fp32"  # the backbone's autocast: fp32, bf16 or fp16 (`auto` resolved before this)
    second_stage_epochs: int | None = None  # None: the method's declared second stage (`Method.second_stage`)
    second_stage_lr: float | None = None  # at the run's batch; None: the declared lr scaled to the batch
    second_stage_weight_decay: float | None = None
    seed: int = 0
    data_seed: int = 0
    imbalance_ratio: float | None = None
    knobs: dict[str, float] = field(default_factory=dict)  # fixed test-time knobs, e.g. {"alpha": 2.0}
    method_options: dict[str, float] = field(default_factory=dict)  # --option values, e.g. {"gamma": 2.0}
    tuning: dict[str, Any] | None = None  # --protocol tuned: the study whose best trial this run trains
    data_root: str | None = None
    pretrained_file: str | None = None  # a local state dict to start the backbone from
    output: str = "results"
    device: str = "auto"  # the local (rank's) GPU when one is visible, else the CPU
    download: bool = False
    num_workers: int | None = None  # None: the CPUs the process may use, counted where it runs
    checkpoint_seconds: float = 120.0  # mid-epoch checkpoint interval (every epoch end checkpoints too)
    channels_last: bool = False  # speed only: the model in channels_last memory format
    compile: bool = False  # speed only: the backbone under torch.compile
    threads: int = 1  # CPU threads of torch: float sums depend on it, so other than 1 it names the run
    val_every: int | None = None  # epochs between validation passes of the curve (None: ~10 points; 0: none)
    tensorboard: bool = False  # also write TensorBoard event files to the run folder

    def identity(self) -> dict[str, Any]:
        """The fields that decide the result (placement fields left out)."""
        values = dataclasses.asdict(self)
        for name in PLACEMENT_FIELDS:
            values.pop(name)
        adapters_unused = self.finetune != "peft"
        for name, default in FINETUNE_DEFAULTS.items():
            if values[name] == default or (adapters_unused and name != "finetune"):
                values.pop(name)
        if values["test_crops"] == 1:  # one view: as every run before the option
            values.pop("test_crops")
        if values["pretraining_data"] is None:
            values.pop("pretraining_data")
        for name in ("method_options", "tuning"):  # absent from runs before options and tuning
            if not values[name]:
                values.pop(name)
        if values["threads"] == 1:  # as every run before threads named runs (all made with --threads 1)
            values.pop("threads")
        for name in SECOND_STAGE_FIELDS:
            if values[name] is None:
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


def stale_identity(record: dict[str, Any]) -> str | None:
    """Why `record` cannot stand for its run id: it was made with --threads other than 1 under the
    identity of earlier code, which left threads out (its id is the id of the same run on one
    thread); None otherwise."""
    try:
        config = RunConfig.from_json(record["config"])
        today, one_thread = config.run_id, config.replace(threads=1).run_id
    except (KeyError, TypeError, ValueError):
        return None
    if config.threads == 1 or record["run_id"] != one_thread:
        return None
    return (
        f"record {record['run_id']} was made with --threads {config.threads} under an older run "
        f"identity (today's id: {today})"
    )


def resolve_config(method: str, dataset: str, *, protocol: str | None = None, **overrides: Any) -> RunConfig:
    """The protocol's recipe for (method, dataset) with every non-None override applied, validated.

    `shared` (the default) is the dataset's recipe for every method; `paper` is the method's own
    paper's recipe (`Method.paper_recipes`). Epochs other than the recipe's move its milestones and
    warm-up proportionally; a batch size other than the recipe's scales its learning rate linearly
    (Goyal et al. 2017) unless `lr` is given too. These fields are the first stage's: a second stage
    trains on its own schedule (`Method.second_stage`, `second_stage_*` overrides).
    """
    from lt_bench.data.base import DATASETS
    from lt_bench.data.split_lists import files_digest
    from lt_bench.precision import resolve_precision

    protocol = protocol or "shared"
    recipe = protocol_recipe(method, dataset, protocol)
    given = {name: value for name, value in overrides.items() if value is not None}
    values = {**recipe, **given}
    lr_note = None
    if "batch_size" in given and "lr" not in given and given["batch_size"] != recipe["batch_size"]:
        values["lr"] = recipe["lr"] * given["batch_size"] / recipe["batch_size"]
        lr_note = (
            f"{dataset}: lr {recipe['lr']:g} × batch {given['batch_size']}/{recipe['batch_size']} = "
            f"{values['lr']:g} (recipe lr scaled linearly with the global batch; --lr sets it)"
        )
    values.update(scaled_schedule(recipe, values["epochs"], given))
    values["milestones"] = tuple(values.get("milestones", ()))
    values["precision"] = resolve_precision(values.get("precision", "auto"), values.get("device", "auto"))
    source = DATASETS.get(dataset)
    if values.get("imbalance_ratio") is None:
        values["imbalance_ratio"] = source.default_imbalance_ratio
    list_files = source().split_list_files(Path(values.get("data_root") or "."))
    if values.get("custom_lists") and not list_files:
        raise UserError(
            f"--custom-lists names other split-list files, and {dataset} is not read from any (its splits "
            f"are built in); drop --custom-lists"
        )
    if values.get("custom_lists"):
        values["lists_digest"] = files_digest(list_files)
    if values.get("pretrained_file"):
        values["pretrained_digest"] = weights_digest(Path(values["pretrained_file"]))
    config = RunConfig(method=method, dataset=dataset, protocol=protocol, **values)
    validate(config)
    check_method_needs(config, recipe, milestones_given="milestones" in given)
    if config.select == "best-val" and DATASETS.get(dataset).validation_is_test:
        raise UserError(
            f"--select best-val needs a validation split apart from the test images, which {dataset} "
            f"lacks; pass --select last"
        )
    if lr_note:
        print(lr_note, file=sys.stderr)
    return config


def weights_digest(path: Path) -> str:
    """The digest that names a --pretrained-file in the run id; a one-line error when unreadable."""
    from lt_bench.backbones import file_digest  # imports timm: only when weights are given

    try:
        return file_digest(path)
    except OSError as error:
        raise UserError(
            f"--pretrained-file {path} is not readable ({error.strerror}); pass a state dict file"
        ) from error


def protocol_recipe(method: str, dataset: str, protocol: str) -> dict[str, Any]:
    """The training fields `protocol` prescribes for `method` on `dataset` (before user overrides)."""
    from lt_bench.data.base import DATASETS

    if protocol not in PROTOCOLS:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    shared = dataclasses.asdict(DATASETS.get(dataset).recipe)
    if protocol in ("shared", "tuned"):  # tuned: the shared recipe, then a study's best values
        return shared
    from lt_bench.method import METHODS  # the method registry imports every method: only when needed

    method_class = METHODS.get(method)
    paper_recipe = method_class.paper_recipes.get(dataset)
    if paper_recipe is None:
        known = ", ".join(sorted(method_class.paper_recipes)) or "none"
        raise UserError(
            f"method {method!r} has no paper recipe for {dataset} (its paper recipes: {known}); "
            f"pass --protocol shared"
        )
    return {**shared, **paper_recipe.overrides}


def scaled_schedule(recipe: dict[str, Any], epochs: int, given: dict[str, Any]) -> dict[str, Any]:
    """The recipe's milestones and warm-up moved proportionally to `epochs` (e.g. 160, 180 of 200 →
    80, 90 of 100); values the user gave stay as given."""
    if epochs == recipe["epochs"] or not isinstance(epochs, int) or epochs < 1:
        return {}
    ratio = epochs / recipe["epochs"]
    scaled = {
        "milestones": tuple(math.floor(milestone * ratio) for milestone in recipe["milestones"]),
        "warmup_epochs": math.floor(recipe["warmup_epochs"] * ratio),
    }
    return {name: value for name, value in scaled.items() if name not in given}


def check_method_needs(config: RunConfig, recipe: dict[str, Any], *, milestones_given: bool) -> None:
    """Options the method cannot honour are refused: `--finetune linear` for a method that needs
    images at every step (`Method.image_needs`), and milestones it would not use or that collapse."""
    from lt_bench.method import METHODS

    method_class = METHODS.get(config.method)
    needs = method_class.image_needs()
    if config.finetune == "linear" and needs:
        raise UserError(
            f"--finetune linear trains on features cached once, and method {config.method!r} {needs}; "
            f"pass --finetune full or peft"
        )
    _check_milestones(
        config, recipe, milestones_given=milestones_given, method_uses=method_class.uses_milestones
    )


def _check_milestones(
    config: RunConfig, recipe: dict[str, Any], *, milestones_given: bool, method_uses: bool
) -> None:
    """Milestones only where the schedule or the method uses them (`Method.uses_milestones`: DRW's
    switch), each an epoch of the run; recipe milestones moved to fewer epochs must stay apart and
    after epoch 0, or the run would train at the decayed rate throughout."""
    if not (config.schedule == "multistep" or method_uses):
        if milestones_given and config.milestones:
            raise UserError(
                f"--milestones is used by --schedule multistep (or by a method that switches there, such "
                f"as ldam_drw), and {config.method!r} under --schedule {config.schedule} ignores it; "
                f"drop --milestones or pass --schedule multistep"
            )
        return
    if not _milestones_fit(config.milestones, config.epochs):
        raise UserError(
            f"--milestones must be sorted epochs below --epochs {config.epochs}, got "
            f"{' '.join(map(str, config.milestones))}; pass --milestones with values below "
            f"{config.epochs}, or --milestones alone for none"
        )
    if milestones_given or config.epochs == recipe["epochs"]:
        return
    original = tuple(recipe["milestones"])
    if not _keeps_apart(original, config.milestones):
        smallest = _smallest_epochs_keeping_apart(original, recipe["epochs"])
        raise UserError(
            f"--epochs {config.epochs} moves the {config.protocol} recipe's lr milestones "
            f"{', '.join(map(str, original))} (of {recipe['epochs']} epochs) to "
            f"{', '.join(map(str, config.milestones))}, where its decays fall together or at epoch 0; "
            f"pass --epochs {smallest} or more, or --milestones"
        )


def _keeps_apart(original: tuple[int, ...], scaled: tuple[int, ...]) -> bool:
    """Distinct recipe milestones stay distinct, and none after epoch 0 moves to epoch 0."""
    pairs = list(zip(original, scaled, strict=True))
    collapsed = any(a < b and sa >= sb for (a, sa), (b, sb) in itertools.pairwise(pairs))
    return not collapsed and all(scaled_m > 0 for m, scaled_m in pairs if m > 0)


def _smallest_epochs_keeping_apart(original: tuple[int, ...], recipe_epochs: int) -> int:
    """The smallest epochs from which every count up to the recipe's keeps its milestones apart."""
    smallest = recipe_epochs
    for epochs in range(recipe_epochs - 1, 0, -1):
        scaled = tuple(math.floor(m * epochs / recipe_epochs) for m in original)
        if not _keeps_apart(original, scaled):
            break
        smallest = epochs
    return smallest


def validate(config: RunConfig) -> None:
    """Raise a one-line UserError for impossible values."""
    from lt_bench.precision import PRECISIONS
    from lt_bench.test_crops import CROP_COUNTS

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
            config.precision in PRECISIONS,
            f"--precision must be auto or one of {', '.join(PRECISIONS)}, got {config.precision!r}",
        ),
        (
            config.finetune in FINETUNE_MODES,
            f"--finetune must be one of {', '.join(FINETUNE_MODES)}, got {config.finetune!r}",
        ),
        (
            config.peft in PEFT_ADAPTERS,
            f"--peft must be one of {', '.join(PEFT_ADAPTERS)}, got {config.peft!r}",
        ),
        (
            config.peft_rank is None or (isinstance(config.peft_rank, int) and config.peft_rank >= 1),
            f"--peft-rank must be a whole number >= 1, got {config.peft_rank}",
        ),
        (
            config.pretraining_data in (None, *PRETRAINING_DATA),
            f"--pretraining-data must be one of {', '.join(PRETRAINING_DATA)}, "
            f"got {config.pretraining_data!r}",
        ),
        (
            config.pretraining_data is None or config.pretrained_digest is not None,
            "--pretraining-data declares what a --pretrained-file was trained on: pass it with "
            "--pretrained-file (timm's published weights are external data)",
        ),
        (
            config.test_crops in CROP_COUNTS,
            f"--test-crops must be one of {', '.join(map(str, CROP_COUNTS))}, got {config.test_crops}",
        ),
        (
            config.val_every is None or (isinstance(config.val_every, int) and config.val_every >= 0),
            f"--val-every must be a whole number of epochs >= 0, got {config.val_every}",
        ),
        (
            _non_negative(config.checkpoint_seconds),
            f"--checkpoint-every must be >= 0 seconds, got {config.checkpoint_seconds}",
        ),
        (
            isinstance(config.output, str) and config.output.strip() != "",
            f"--output must name a results folder, got {config.output!r}",
        ),
        (
            config.num_workers is None or config.num_workers >= 0,
            f"--num-workers must be >= 0, got {config.num_workers}",
        ),
        (
            isinstance(config.threads, int) and config.threads >= 1,
            f"--threads must be at least 1, got {config.threads}",
        ),
        (
            isinstance(config.device, str) and DEVICE_PATTERN.fullmatch(config.device) is not None,
            f"--device must be auto, cpu, cuda or cuda:N (a GPU's index), got {config.device!r}",
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
    if config.method_options:
        check_method_options(config.method, config.method_options)
    if any(getattr(config, name) is not None for name in SECOND_STAGE_FIELDS):
        _check_second_stage(config)


def _milestones_fit(milestones: tuple[int, ...], epochs: int) -> bool:
    """Sorted 0-based epochs of the run (a repeated one decays twice there, as recipes scaled down do)."""
    return all(0 <= m < epochs for m in milestones) and list(milestones) == sorted(milestones)


def _check_knob_ranges(config: RunConfig) -> None:
    """Fixed knobs within the bounds the method declares (`Method.test_time_knob_ranges`)."""
    from lt_bench.method import METHODS

    ranges = METHODS.get(config.method).test_time_knob_ranges
    for name, value in config.knobs.items():
        low, high = ranges.get(name, (-math.inf, math.inf))
        if not low <= value <= high:
            bounds = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
            raise UserError(f"--knob {name} must be {bounds} for method {config.method!r}, got {value:g}")


def check_method_options(method: str, values: dict[str, float]) -> None:
    """`--option` names the method declares (`Method.options`), each value within its range."""
    from lt_bench.method import METHODS

    options = METHODS.get(method).options
    for name, value in values.items():
        if name not in options:
            known = ", ".join(sorted(options)) or "none"
            raise UserError(f"method {method!r} has no option {name!r} (its options: {known})")
        option = options[name]
        if not isinstance(value, (int, float)) or not option.accepts(value):
            whole = " (a whole number)" if option.range.integer else ""
            raise UserError(
                f"--option {name} must be in [{option.range.low:g}, {option.range.high:g}]{whole} for "
                f"method {method!r}, got {value!r}"
            )


def _check_second_stage(config: RunConfig) -> None:
    """`--second-stage-*` values only for a method that trains a second stage, and possible ones."""
    from lt_bench.method import METHODS

    method_class = METHODS.get(config.method)
    if method_class.second_stage is None:
        what = "trains nothing after its first stage" if method_class.first_stage else "has one stage"
        raise UserError(f"method {config.method!r} {what}; drop --second-stage-epochs/-lr/-weight-decay")
    checks = [
        (
            config.second_stage_epochs is None
            or (isinstance(config.second_stage_epochs, int) and config.second_stage_epochs >= 1),
            f"--second-stage-epochs must be at least 1, got {config.second_stage_epochs}",
        ),
        (
            config.second_stage_lr is None or _positive(config.second_stage_lr),
            f"--second-stage-lr must be a positive number, got {config.second_stage_lr}",
        ),
        (
            config.second_stage_weight_decay is None or _non_negative(config.second_stage_weight_decay),
            f"--second-stage-weight-decay must be >= 0, got {config.second_stage_weight_decay}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def _positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _non_negative(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
