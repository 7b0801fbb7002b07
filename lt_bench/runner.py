"""One run end to end: data → backbone + method head → training → knob selection on val → test → record."""

from __future__ import annotations

import itertools
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lt_bench import distributed
from lt_bench.atomic import write_json
from lt_bench.backbones import LongTailClassifier, accelerate, create_backbone
from lt_bench.best_epoch import BestEpoch
from lt_bench.checkpoint import read_checkpoint
from lt_bench.config import RunConfig
from lt_bench.cost import model_footprint, run_cost
from lt_bench.curves import EpochValidation, training_curve, validation_interval
from lt_bench.data.base import DATASETS, DataOptions, LongTailedData
from lt_bench.errors import UserError
from lt_bench.evaluation import classification_metrics
from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.records import SCHEMA, environment, now, read_record, record_path, write_record
from lt_bench.schedule import learning_rate
from lt_bench.training import StagePlan, TrainingFailed, extract_features, is_out_of_memory, train

EVAL_BATCH_SIZE = 512


@dataclass(frozen=True)
class RunPaths:
    """Where a run keeps its files: `<output>/runs/<run_id>/` and its record."""

    folder: Path
    record: Path

    @classmethod
    def of(cls, config: RunConfig) -> RunPaths:
        return cls(Path(config.output) / "runs" / config.run_id, record_path(config.output, config.run_id))

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def log(self) -> Path:
        return self.folder / "log.jsonl"

    def discard(self) -> None:
        """Delete the run folder and the record, so that the run trains from scratch."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.record.unlink(missing_ok=True)


def finished_record(config: RunConfig) -> dict[str, Any] | None:
    """The finished record of exactly this configuration, if one exists."""
    path = RunPaths.of(config).record
    if not path.exists():
        return None
    try:
        record = read_record(path)
    except ValueError:
        return None
    return record if record["status"] == "finished" else None


def run(config: RunConfig) -> dict[str, Any]:
    """Train and evaluate `config` (resuming from its checkpoint), write and return its record."""
    started = time.perf_counter()
    method_class = METHODS.get(config.method)
    data = load_data(config)
    device = distributed.start_from_environment(_device(config.device))
    paths = RunPaths.of(config)
    torch.manual_seed(config.seed)
    backbone = create_backbone(
        config.backbone,
        data.in_chans,
        zero_init_last=config.zero_init_last,
        pretrained=config.pretrained,
        pretrained_file=Path(config.pretrained_file) if config.pretrained_file else None,
    ).to(device)
    _check_backbone_takes_images(backbone, data, config.backbone, device)
    steps_per_epoch = len(data.train) // config.batch_size
    context = MethodContext(
        dataset=config.dataset,
        num_classes=data.num_classes,
        class_counts=tuple(data.class_counts),
        feature_dim=backbone.num_features,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        base_lr=config.lr,
        lr_milestones=config.milestones,
        protocol=config.protocol,
    )
    method = method_class(context)
    _knob_candidates(method, config)  # an unknown --knob fails now, not after training
    first_stage = None
    if method_class.first_stage is None:
        model = LongTailClassifier(backbone, method.build_head()).to(device)
        plan = _plan(config, config.epochs, config.schedule, config.warmup_epochs)
    else:
        first_stage = _first_stage(config, method_class.first_stage)
        first_method = METHODS.get(method_class.first_stage)(context)
        model = LongTailClassifier(backbone, first_method.build_head()).to(device)
        model.load_state_dict(_first_stage_checkpoint(first_stage["config"], device)["model"])
        method.prepare_second_stage(model)
        model.to(device)
        # Second stages (decoupling) train with a cosine schedule and no warm-up, as Kang et al. do.
        plan = _plan(config, method.second_stage_epochs(), "cosine", 0)
    epoch_validation = _epoch_validation(paths, model, method, data, config, device, plan.epochs)
    _claim_folder(paths, config)  # after every check of the input, so bad input leaves no folder
    footprint = model_footprint(model, data.val, device)  # before torch.compile, which hides the ops
    accelerate(model, channels_last=config.channels_last, compile=config.compile)
    best_epoch = epoch_validation.best_epoch
    try:
        train(
            model,
            method,
            data.train,
            plan,
            device=device,
            checkpoint_path=paths.checkpoint,
            log_path=paths.log,
            extra_checkpoint={"config": config.identity()},
            checkpoint_seconds=config.checkpoint_seconds,
            on_epoch_end=epoch_validation,
        )
    except TrainingFailed as error:
        _write_failed(config, str(error), started)
        raise UserError(
            f"{error}; the last good checkpoint is kept in {paths.folder}; {error.fix}"
        ) from error
    if not distributed.is_main_process():  # rank 0 alone evaluates (every image once) and writes
        return distributed.from_main_process(None)
    kept_epoch = (
        best_epoch.restore(device)
        if best_epoch is not None
        else {"rule": "last", "epoch": plan.epochs, "why": "the final epoch's weights"}
    )
    try:
        evaluation = evaluate(model, method, data, config, device)
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        _write_failed(config, f"out of memory on {device} while evaluating", started)
        raise UserError(f"out of memory on {device} while evaluating; pass a smaller --backbone") from error
    record = _record(
        config,
        started,
        status="finished",
        class_counts=data.class_counts,
        first_stage=first_stage and {"run_id": first_stage["run_id"], "reused": first_stage["reused"]},
        kept_epoch=kept_epoch,
        curve=training_curve(paths.log),
        **evaluation,
    )
    record["cost"] = run_cost(
        footprint,
        images_seen=steps_per_epoch
        * config.batch_size
        * (plan.epochs + (config.epochs if first_stage else 0)),
        wall_time_s=record["wall_time_s"],
        device=device,
        first_stage=first_stage and finished_record(first_stage["config"]),
        first_stage_reused=bool(first_stage and first_stage["reused"]),
    )
    write_record(config.output, record)
    return distributed.from_main_process(record)


def load_data(config: RunConfig) -> LongTailedData:
    options = DataOptions(
        data_root=Path(config.data_root) if config.data_root else None,
        imbalance_ratio=config.imbalance_ratio,
        data_seed=config.data_seed,
        download=config.download,
        num_workers=config.num_workers,
        custom_lists=config.custom_lists,
    )
    data = DATASETS.get(config.dataset)().load(options)
    if data.lists_digest != config.lists_digest:
        raise UserError(
            f"the split lists of {config.dataset} changed after this run was configured "
            f"(digest {data.lists_digest} vs {config.lists_digest}); start the command again"
        )
    if config.batch_size > len(data.train):
        raise UserError(
            f"--batch-size {config.batch_size} is larger than the {len(data.train)} training images of "
            f"{config.dataset}; pass a smaller --batch-size"
        )
    return data


def evaluate(
    model: LongTailClassifier, method: Method, data: LongTailedData, config: RunConfig, device: torch.device
) -> dict[str, Any]:
    """Pick the test-time knobs on the validation split, then measure the test split with them."""
    val_features = extract_features(model.backbone, data.val, batch_size=EVAL_BATCH_SIZE, device=device)
    test_features = extract_features(model.backbone, data.test, batch_size=EVAL_BATCH_SIZE, device=device)
    candidates = _knob_candidates(method, config)
    best, searched = search_knobs(model, method, val_features, data, candidates)
    with torch.no_grad():
        val_logits = method.inference_logits(model.head, val_features, **best["knobs"]).cpu()
        test_logits = method.inference_logits(model.head, test_features, **best["knobs"]).cpu()
    test_metrics = classification_metrics(test_logits, data.test.labels, data.class_counts, data.shot_rule)
    val_metrics = classification_metrics(val_logits, data.val.labels, data.class_counts, data.shot_rule)
    return {
        "metrics": {"test": _summary(test_metrics), "val": _summary(val_metrics)},
        "per_class_accuracy": test_metrics["per_class_accuracy"],
        "calibration": test_metrics["calibration"],
        "shot_groups": data.shot_rule.groups(data.class_counts),
        "knobs": {
            "selected": best["knobs"],
            "candidates": {k: list(v) for k, v in candidates.items()},
            "validation": searched,
        },
        "test_labels": data.test.labels.tolist(),
        "test_predictions": test_logits.argmax(1).tolist(),
    }


@torch.no_grad()
def search_knobs(
    model: LongTailClassifier,
    method: Method,
    val_features: torch.Tensor,
    data: LongTailedData,
    candidates: dict[str, tuple[float, ...]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every combination of knob values on the validation features; the best by balanced accuracy
    (the first of equals wins) and the list of all tried."""
    model.head.eval()
    searched = []
    for values in itertools.product(*candidates.values()):
        knobs = dict(zip(candidates, values, strict=True))
        logits = method.inference_logits(model.head, val_features, **knobs).cpu()
        metrics = classification_metrics(logits, data.val.labels, data.class_counts, data.shot_rule)
        searched.append(
            {
                "knobs": knobs,
                **{k: metrics[k] for k in ("balanced_accuracy", "top1", "many", "medium", "few")},
            }
        )
    return max(searched, key=lambda entry: entry["balanced_accuracy"]), searched


def _epoch_validation(
    paths: RunPaths,
    model: LongTailClassifier,
    method: Method,
    data: LongTailedData,
    config: RunConfig,
    device: torch.device,
    epochs: int,
) -> EpochValidation:
    """The epoch-end hook: validation balanced accuracy (knobs searched as for the final test) for
    the training curve, and under `--select best-val` after each epoch, the best epoch kept."""
    candidates = _knob_candidates(method, config)

    def score() -> float:
        with torch.random.fork_rng(devices=[]):  # a data loader may draw its seed from the global RNG
            features = extract_features(model.backbone, data.val, batch_size=EVAL_BATCH_SIZE, device=device)
            return search_knobs(model, method, features, data, candidates)[0]["balanced_accuracy"]

    best_epoch = BestEpoch(paths.folder / "best.pt", model, method) if config.select == "best-val" else None
    return EpochValidation(
        score,
        every=validation_interval(epochs, config.val_every),
        epochs=epochs,
        best_epoch=best_epoch,
        tensorboard=paths.folder / "tensorboard" if config.tensorboard else None,
    )


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in ("per_class_accuracy", "calibration")}


def _knob_candidates(method: Method, config: RunConfig) -> dict[str, tuple[float, ...]]:
    candidates = dict(method.test_time_knobs())
    for name, value in config.knobs.items():
        if name not in candidates:
            known = ", ".join(candidates) or "none"
            raise UserError(f"method {config.method!r} has no test-time knob {name!r} (its knobs: {known})")
        candidates[name] = (float(value),)
    return candidates


def _plan(config: RunConfig, epochs: int, schedule: str, warmup_epochs: int) -> StagePlan:
    def rate(epoch: int) -> float:
        return learning_rate(
            epoch,
            base_lr=config.lr,
            epochs=epochs,
            schedule=schedule,
            warmup_epochs=warmup_epochs,
            milestones=config.milestones,
            lr_decay=config.lr_decay,
            warmup_start=config.warmup_start,
        )

    return StagePlan(
        epochs=epochs,
        batch_size=config.batch_size,
        learning_rate=rate,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        seed=config.seed,
        nesterov=config.nesterov,
    )


def _first_stage(config: RunConfig, first_method: str) -> dict[str, Any]:
    """The finished first-stage run of the same data, backbone, schedule and seed: reused, or trained now."""
    first_config = config.replace(method=first_method, knobs={})
    record = finished_record(first_config)
    reused = record is not None and RunPaths.of(first_config).checkpoint.exists()
    if not reused:
        record = run(first_config)
    return {"run_id": record["run_id"], "reused": reused, "config": first_config}


def _device(name: str) -> torch.device:
    """`--device` as a torch device this machine has."""
    try:
        device = torch.device(name)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"--device {name!r} is not usable here ({first_line}); pass --device cpu") from error
    return device


def _first_stage_checkpoint(first_config: RunConfig, device: torch.device) -> dict[str, Any]:
    """The final checkpoint of a finished first-stage run (never an older fallback)."""
    path = RunPaths.of(first_config).checkpoint
    try:
        return read_checkpoint(path, device)
    except ValueError as error:
        raise UserError(
            f"the first-stage checkpoint {path} is unusable ({error}); train that stage again: the "
            f"same command with --method {first_config.method} --rerun"
        ) from error


def _claim_folder(paths: RunPaths, config: RunConfig) -> None:
    """Create the run folder, or check that an existing one was made by the same configuration."""
    config_path = paths.folder / "config.json"
    if config_path.exists():
        try:
            existing = json.loads(config_path.read_text())
        except (OSError, json.JSONDecodeError):
            existing = None
        if existing != json.loads(json.dumps(config.identity())):
            raise UserError(
                f"{paths.folder} holds a run of a different configuration; delete that folder to start fresh"
            )
        return
    if distributed.is_main_process():
        try:
            paths.folder.mkdir(parents=True, exist_ok=True)
            write_json(config_path, config.identity())
        except OSError as error:
            raise UserError(
                f"cannot create the run folder {paths.folder} ({error.strerror}); pass a writable --output"
            ) from error


@torch.no_grad()
def _check_backbone_takes_images(
    backbone: torch.nn.Module, data: LongTailedData, name: str, device: torch.device
) -> None:
    """One eval-mode forward of two validation images, so a backbone that cannot take the dataset's
    image size fails with a one-line error before training (no weights or random state change)."""
    sample = [(0, torch.arange(min(2, len(data.val))))]
    backbone.eval()
    with torch.random.fork_rng(devices=[]):  # a data loader may draw its seed from the global RNG
        images, _ = next(iter(data.val.batches(sample, train=False, device=device)))
        try:
            backbone(images)
        except (RuntimeError, AssertionError, ValueError) as error:  # timm asserts input sizes
            reason = str(error).strip().splitlines()[0]
            raise UserError(
                f"backbone {name!r} cannot take {data.name}'s {tuple(images.shape[1:])} images "
                f"({reason}); choose another --backbone"
            ) from error


def _write_failed(config: RunConfig, reason: str, started: float) -> None:
    if distributed.is_main_process():
        write_record(config.output, _record(config, started, status="failed", error=reason, metrics={}))


def _record(config: RunConfig, started: float, **fields: Any) -> dict[str, Any]:
    """A record of `config`: identity, resolved config and environment, then the given fields."""
    return {
        "schema": SCHEMA,
        "run_id": config.run_id,
        "method": config.method,
        "dataset": config.dataset,
        "backbone": config.backbone,
        "seed": config.seed,
        "data_seed": config.data_seed,
        "config": config.to_json(),
        **fields,
        **environment(),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "finished_at": now(),
    }
