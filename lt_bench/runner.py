"""One run end to end: data → backbone + method head → training → knob selection on val → test → record."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

import torch

from lt_bench import distributed
from lt_bench.atomic import write_json
from lt_bench.backbones import (
    LongTailClassifier,
    accelerate,
    check_backbone_name,
    create_backbone,
    pretraining,
)
from lt_bench.best_epoch import BestEpoch
from lt_bench.checkpoint import read_checkpoint
from lt_bench.config import RunConfig, stale_identity
from lt_bench.cost import model_footprint, run_cost
from lt_bench.curves import EpochValidation, training_curve, validation_interval
from lt_bench.data.base import DATASETS, DataOptions, LongTailedData, Split
from lt_bench.data.files import default_num_workers
from lt_bench.devices import describe_device, resolve_device
from lt_bench.errors import UnreadableImage, UserError
from lt_bench.evaluation import classification_metrics, knob_scores
from lt_bench.finetune import FeatureSplit, LinearProbe, prepare_backbone
from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.method_code import method_code, recorded_digest
from lt_bench.plugin_errors import PluginFailed, blamed_on_plugin
from lt_bench.precision import check_precision
from lt_bench.pretrained_input import fit_input, pretrained_input
from lt_bench.records import SCHEMA, environment, now, read_record, record_path, records_dir, write_record
from lt_bench.run_lock import exclusive_run
from lt_bench.schedule import learning_rate
from lt_bench.stages import Stage, first_stage_config, run_stages, stages_record
from lt_bench.test_crops import average_views
from lt_bench.test_time import adapted_test
from lt_bench.training import (
    StagePlan,
    TrainingFailed,
    derived_seed,
    extract_features,
    is_out_of_memory,
    seed_global_rng,
    train,
)

EVAL_BATCH_SIZE = 512
KNOB_SCORE_ORDER = ("balanced_accuracy", "top1", "many", "medium", "few")  # as records list them
FIRST_STAGE, SECOND_STAGE = 0, 1  # a run's own stage; the stage trained on a finished first-stage run


@dataclass(frozen=True)
class RunPaths:
    """Where a run keeps its files: `<output>/runs/<run_id>/` and its record."""

    folder: Path
    record: Path

    @classmethod
    def of(cls, config: RunConfig) -> RunPaths:
        return cls(Path(config.output) / "runs" / config.run_id, record_path(config.output, config.run_id))

    @property
    def failed_record(self) -> Path:
        """Where a failed attempt's record goes when the run's record is a finished one (kept)."""
        return self.record.with_name(f"{self.record.stem}.failed.json")

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def log(self) -> Path:
        return self.folder / "log.jsonl"

    @property
    def best(self) -> Path:
        """The best-validation epoch's weights under `--select best-val` (see lt_bench.best_epoch)."""
        return self.folder / "best.pt"

    @property
    def code(self) -> Path:
        """The method code the folder's checkpoints come from (see lt_bench.method_code)."""
        return self.folder / "method_code.json"

    def discard(self) -> None:
        """Delete the run folder and the records, so that the run trains from scratch."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.record.unlink(missing_ok=True)
        self.failed_record.unlink(missing_ok=True)


def finished_record(config: RunConfig) -> dict[str, Any] | None:
    """The finished record of exactly this configuration and the method code in use, if one exists."""
    path = RunPaths.of(config).record
    if not path.exists():
        return None
    try:
        record = read_record(path)
    except ValueError:
        return None
    if record["status"] != "finished" or recorded_digest(record) != method_code(config.method)["digest"]:
        return None
    stale = stale_identity(record)
    if stale is not None:
        print(f"{stale}; not reused: running it again", file=sys.stderr)
        return None
    return record


def run(
    config: RunConfig,
    *,
    rerun: bool = False,
    on_validation: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train and evaluate `config` (resuming from its checkpoint), write and return its record.

    One process owns a run at a time (`lt_bench.run_lock`); `rerun` first deletes the run folder (a
    finished record stays until the new one replaces it). A plugin method that breaks ends in a
    failed record and one line naming it (`lt_bench.plugin_errors`). `on_validation(epoch, score)`
    is told each validation balanced accuracy of the training curve and may raise to stop training
    (a pruned tuning trial). With fixed test-time knobs, a finished knob-free run of the same code is
    not trained again: its final weights are evaluated with the knobs (training does not depend on
    them).
    """
    started = time.perf_counter()
    _check_output(config.output)
    config = on_this_machine(config)
    with ExitStack() as held:

        def own() -> None:
            """Take the run's lock (rank 0), then discard the folder of a `rerun`."""
            if distributed.is_main_process():
                held.enter_context(exclusive_run(config.output, config.run_id))
                if rerun:
                    shutil.rmtree(RunPaths.of(config).folder, ignore_errors=True)

        try:
            with blamed_on_plugin(config.method):
                return _run(config, started, own, on_validation)
        except PluginFailed as error:
            _fail(config, started, method_code(config.method), resolve_device(config.device), str(error))


def _run(
    config: RunConfig,
    started: float,
    own: Callable[[], None],
    on_validation: Callable[[int, float], None] | None,
) -> dict[str, Any]:
    """`run` of `config`; `own()` makes the run this process's, after every check of the input (bad
    input leaves nothing behind) and before anything is written."""
    method_class = METHODS.get(config.method)
    torch.set_num_threads(config.threads)
    code = method_code(config.method)
    data = load_data(config)
    device = distributed.start_from_environment(resolve_device(config.device))
    check_precision(config.precision, device)
    paths = RunPaths.of(config)
    seed_global_rng(derived_seed(config.seed, FIRST_STAGE))
    backbone = create_backbone(
        config.backbone,
        data.in_chans,
        zero_init_last=config.zero_init_last,
        pretrained=config.pretrained,
        pretrained_file=Path(config.pretrained_file) if config.pretrained_file else None,
    )
    model_input = pretrained_input(
        backbone, data.in_chans, starts_pretrained=config.pretrained or config.pretrained_file is not None
    )
    if model_input is not None:
        data = fit_input(data, model_input)
    finetuning = prepare_backbone(
        backbone,
        finetune=config.finetune,
        peft=config.peft,
        peft_rank=config.peft_rank,
        num_classes=data.num_classes,
        name=config.backbone,
    )
    backbone.to(device)
    _check_backbone_takes_images(backbone, data, config.backbone, device)
    stage = run_stages(config)[-1]
    context = MethodContext(
        dataset=config.dataset,
        num_classes=data.num_classes,
        class_counts=tuple(data.class_counts),
        feature_dim=backbone.num_features,
        epochs=stage.epochs,
        steps_per_epoch=len(data.train) // config.batch_size,
        base_lr=stage.lr if stage.lr is not None else config.lr,
        lr_milestones=config.milestones,
        protocol=config.protocol,
        method_options=config.method_options,
    )
    method = method_class(context)
    knob_candidates(method, config)  # an unknown --knob fails now, not after training
    _check_test_crops(method, config)
    own()
    _discard_if_stale(paths)
    _check_folder_config(paths, config)
    _discard_if_code_changed(paths, config, code)
    source = _knob_free_run(config)
    model, first_stage = _stage_model(config, method, backbone, context, device, load_first_stage=not source)
    plan = _stage_plan(config, stage)
    epoch_validation = _epoch_validation(
        paths, model, method, data, config, device, plan.epochs, on_validation
    )
    if source is not None:
        retrain = "the same command without --knob, with --rerun"
        load_final_state(source.config, model, method, device, retrain=retrain)
        first_stage, kept_epoch = source.record.get("first_stage"), source.record.get("kept_epoch")
    else:
        _claim_folder(paths, config, code)  # after every check of the input: bad input leaves no folder
    footprint = model_footprint(model, data.val, device)  # before torch.compile, which hides the ops
    accelerate(model, channels_last=config.channels_last, compile=config.compile, device=device)
    best_epoch = epoch_validation.best_epoch
    head_init = source.record.get("head_init") if source else None
    if source is None:
        train_features = None
        if config.finetune == "linear" or method.head_from_features:
            with torch.random.fork_rng(devices=[]):  # a data loader may draw its seed from the global RNG
                train_features = _features(model, data.train, config, device)
        if method.head_from_features:
            head_init = method.initialise_head(model.head, train_features, data.train.labels.to(device))
        trained, train_split = model, data.train
        if config.finetune == "linear":
            trained, train_split = LinearProbe(model), FeatureSplit(train_features, data.train.labels)
        try:
            train(
                trained,
                method,
                train_split,
                plan,
                device=device,
                checkpoint_path=paths.checkpoint,
                log_path=paths.log,
                extra_checkpoint={"config": config.identity(), "method_code": code},
                checkpoint_seconds=config.checkpoint_seconds,
                on_epoch_end=epoch_validation,
            )
        except TrainingFailed as error:
            kept = f"the last good checkpoint is kept in {paths.folder}" if paths.checkpoint.exists() else ""
            _fail(config, started, code, device, str(error), kept, error.fix)
    if not distributed.is_main_process():  # rank 0 alone evaluates (every image once) and writes
        return distributed.from_main_process(None)
    if source is None:
        kept_epoch = (
            best_epoch.restore(device)
            if best_epoch is not None
            else {"rule": "last", "epoch": plan.epochs, "why": "the final epoch's weights"}
        )
    kept = "" if source else f"the trained model is kept in {paths.folder}"
    try:
        evaluation = evaluate(model, method, data, config, device)
    except UnreadableImage as error:
        _fail(config, started, code, device, f"evaluating: {error}", kept)
    except NonFiniteOutputs as error:
        _fail(config, started, code, device, str(error), kept, "lower --lr or pass other --knob values")
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        _fail(config, started, code, device, f"out of memory on {device} while evaluating", kept,
              "pass a smaller --backbone")  # fmt: skip
    record = _record(
        config,
        started,
        code,
        device,
        status="finished",
        class_counts=data.class_counts,
        first_stage=first_stage,
        kept_epoch=kept_epoch,
        evaluated_from=source and source.config.run_id,
        curve=source.record.get("curve", []) if source else training_curve(paths.log),
        pretraining=pretraining(
            backbone,
            pretrained=config.pretrained,
            weights_digest=config.pretrained_digest,
            declared_data=config.pretraining_data,
        ),
        finetuning=finetuning,
        **({"input": model_input.describe()} if model_input else {}),
        **({"head_init": head_init} if head_init else {}),
        **evaluation,
    )
    first_config = first_stage and first_stage_config(config, type(method).first_stage)
    record["cost"] = run_cost(
        footprint,
        images_seen=0 if source else len(data.train) // config.batch_size * config.batch_size * plan.epochs,
        wall_time_s=record["wall_time_s"],
        device=device,
        builds_on=source.record if source else first_config and finished_record(first_config),
        builds_on_timed=bool(first_stage and not first_stage["reused"] and not source),
    )
    try:
        write_record(config.output, record)
        paths.failed_record.unlink(missing_ok=True)
    except OSError as error:
        notes = "; ".join(filter(None, [f"cannot write {paths.record} ({error.strerror or error})", kept]))
        raise UserError(f"{notes}; free space there and rerun the same command to evaluate again") from error
    return distributed.from_main_process(record)


def on_this_machine(config: RunConfig) -> RunConfig:
    """`config` with what is resolved where it runs (on a SLURM node, not at submission): the loader
    workers."""
    workers = default_num_workers() if config.num_workers is None else config.num_workers
    return config.replace(num_workers=workers)


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
    val_features = _features(model, data.val, config, device)
    shared_split = data.test is data.val and config.test_crops == 1  # e.g. iNaturalist's val split
    test_features = (
        val_features if shared_split else _features(model, data.test, config, device, crops=config.test_crops)
    )
    candidates = knob_candidates(method, config)
    best, searched = search_knobs(model, method, val_features, data, candidates)
    with torch.no_grad():
        val_logits = method.inference_logits(model.head, val_features, **best["knobs"]).cpu()
        test_logits = method.inference_logits(model.head, test_features, **best["knobs"]).cpu()
        test_logits = average_views(test_logits, config.test_crops)
    adaptation = {}
    if method.adapts_at_test:  # (j) learnt from unlabelled test images, per test set
        test_logits, adapted = adapted_test(
            method, model, data, test_features, best["knobs"], config, EVAL_BATCH_SIZE
        )
        adaptation = {"test_adaptation": adapted}
    _finite(test_logits, "test", best["knobs"])
    test_metrics = classification_metrics(test_logits, data.test.labels, data.class_counts, data.shot_rule)
    val_metrics = (
        test_metrics
        if shared_split and not adaptation
        else classification_metrics(val_logits, data.val.labels, data.class_counts, data.shot_rule)
    )
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
        **adaptation,
    }


class NonFiniteOutputs(ValueError):
    """The model's logits hold NaN or ±inf: no metric of them is a number (the record says failed)."""


def _finite(logits: torch.Tensor, split: str, knobs: dict[str, float]) -> torch.Tensor:
    if not torch.isfinite(logits).all():
        setting = "".join(f" {name}={value:g}" for name, value in knobs.items())
        raise NonFiniteOutputs(f"the {split} logits{' with' + setting if setting else ''} are not finite")
    return logits


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
        logits = _finite(method.inference_logits(model.head, val_features, **knobs).cpu(), "val", knobs)
        scores = knob_scores(logits, data.val.labels, data.class_counts, data.shot_rule)
        searched.append({"knobs": knobs, **{k: scores[k] for k in KNOB_SCORE_ORDER}})
    return max(searched, key=lambda entry: entry["balanced_accuracy"]), searched


def _epoch_validation(
    paths: RunPaths,
    model: LongTailClassifier,
    method: Method,
    data: LongTailedData,
    config: RunConfig,
    device: torch.device,
    epochs: int,
    report: Callable[[int, float], None] | None,
) -> EpochValidation:
    """The epoch-end hook: validation balanced accuracy (knobs searched as for the final test) for
    the training curve, and under `--select best-val` after each epoch, the best epoch kept."""
    candidates = knob_candidates(method, config)

    def score() -> float:
        with torch.random.fork_rng(devices=[]):  # a data loader may draw its seed from the global RNG
            features = _features(model, data.val, config, device)
            return search_knobs(model, method, features, data, candidates)[0]["balanced_accuracy"]

    best_epoch = BestEpoch(paths.best, model, method) if config.select == "best-val" else None
    return EpochValidation(
        score,
        every=validation_interval(epochs, config.val_every),
        epochs=epochs,
        best_epoch=best_epoch,
        tensorboard=paths.folder / "tensorboard" if config.tensorboard else None,
        report=report,
    )


def _features(
    model: LongTailClassifier, split: Split, config: RunConfig, device: torch.device, crops: int = 1
) -> torch.Tensor:
    """Eval-mode features of `split` (of each image's `crops` views), the backbone under the run's
    autocast; a forward pass takes about EVAL_BATCH_SIZE views whatever the crops."""
    batch_size = max(1, EVAL_BATCH_SIZE // crops)
    return extract_features(
        model, split, batch_size=batch_size, device=device, precision=config.precision, crops=crops
    )


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in ("per_class_accuracy", "calibration")}


def check_names(config: RunConfig) -> None:
    """The checks of a run's input that need no data: its method, backbone and `--knob` names. A sweep
    makes them for every run before the first starts, SLURM before anything is submitted."""
    method_class = METHODS.get(config.method)
    check_backbone_name(config.backbone)
    # Knob names depend on the method and the dataset's name only, so placeholder counts will do.
    placeholder = MethodContext(
        dataset=config.dataset,
        num_classes=2,
        class_counts=(1, 1),
        feature_dim=1,
        epochs=config.epochs,
        steps_per_epoch=1,
        base_lr=config.lr,
        lr_milestones=config.milestones,
        protocol=config.protocol,
        method_options=config.method_options,
    )
    with blamed_on_plugin(config.method):
        knob_candidates(method_class(placeholder), config)


def _check_test_crops(method: Method, config: RunConfig) -> None:
    """Crop ensembling averages fixed predictions; a method adapting to the test images is refused."""
    if config.test_crops > 1 and method.adapts_at_test:
        raise UserError(
            f"method {config.method!r} adapts to the unlabelled test images, which --test-crops does not "
            "combine with; pass --test-crops 1"
        )


def knob_candidates(method: Method, config: RunConfig) -> dict[str, tuple[float, ...]]:
    """Each test-time knob's candidates, `--knob` values fixing theirs; an unknown name is a UserError."""
    candidates = dict(method.test_time_knobs())
    for name, value in config.knobs.items():
        if name not in candidates:
            known = ", ".join(candidates) or "none"
            raise UserError(f"method {config.method!r} has no test-time knob {name!r} (its knobs: {known})")
        candidates[name] = (float(value),)
    return candidates


def _stage_plan(config: RunConfig, stage: Stage) -> StagePlan:
    """The training plan of the run's own stage (`run_stages`' last): a second stage on its own epochs,
    lr, weight decay and schedule (no warm-up, no milestones), with the run's batch and optimizer."""
    second = METHODS.get(config.method).first_stage is not None
    milestones = () if second else config.milestones
    if not stage.epochs:  # a post-hoc second stage trains nothing: its rate is never applied
        stage = replace(stage, lr=0.0, weight_decay=0.0, schedule="cosine")

    def rate(epoch: int) -> float:
        return learning_rate(
            epoch,
            base_lr=stage.lr,
            epochs=stage.epochs,
            schedule=stage.schedule,
            warmup_epochs=stage.warmup_epochs,
            milestones=milestones,
            lr_decay=config.lr_decay,
            warmup_start=config.warmup_start,
        )

    return StagePlan(
        epochs=stage.epochs,
        batch_size=config.batch_size,
        learning_rate=rate,
        momentum=config.momentum,
        weight_decay=stage.weight_decay,
        seed=config.seed,
        nesterov=config.nesterov,
        stage=SECOND_STAGE if second else FIRST_STAGE,
        precision=config.precision,
    )


def _stage_model(
    config: RunConfig,
    method: Method,
    backbone: torch.nn.Module,
    context: MethodContext,
    device: torch.device,
    *,
    load_first_stage: bool,
) -> tuple[LongTailClassifier, dict[str, Any] | None]:
    """The model this run's stage starts from and, for a second stage, its first stage's run (reused,
    or trained now when `load_first_stage`): the first stage's model, loaded, then prepared."""
    first_method_name = type(method).first_stage
    if first_method_name is None:
        return LongTailClassifier(backbone, method.build_head()).to(device), None
    first_config = first_stage_config(config, first_method_name)
    first_stage = _first_stage(first_config) if load_first_stage else None
    # Whatever the first stage drew in this process, the second stage draws from its own seed.
    seed_global_rng(derived_seed(config.seed, SECOND_STAGE))
    first_method = METHODS.get(first_method_name)(context)
    model = LongTailClassifier(backbone, first_method.build_head()).to(device)
    if first_stage is not None:
        retrain = f"the same command with --method {first_method_name} --rerun"
        load_final_state(first_config, model, first_method, device, retrain=retrain)
    method.prepare_second_stage(model)
    return model.to(device), first_stage


def _first_stage(first_config: RunConfig) -> dict[str, Any]:
    """The finished first-stage run of the same data, backbone, schedule and seed: reused, or trained now."""
    reused = _finished_run(first_config) is not None
    if not reused:
        run(first_config)
    return {"run_id": first_config.run_id, "reused": reused}


@dataclass(frozen=True)
class FinishedRun:
    """A finished run of the method code in use whose final checkpoint is on disk."""

    config: RunConfig
    record: dict[str, Any]


def _finished_run(config: RunConfig) -> FinishedRun | None:
    record = finished_record(config)
    if record is None or not _evaluated_weights(config).exists():
        return None
    return FinishedRun(config, record)


def _knob_free_run(config: RunConfig) -> FinishedRun | None:
    """For a run with fixed knobs: the finished run of the same configuration without them. Not under
    `--select best-val`, whose choice of epoch depends on the knobs."""
    if not config.knobs or config.select != "last":
        return None
    return _finished_run(config.replace(knobs={}))


def _evaluated_weights(config: RunConfig) -> Path:
    """The checkpoint a finished run was evaluated with: its best-validation epoch, else its last."""
    paths = RunPaths.of(config)
    return paths.best if config.select == "best-val" else paths.checkpoint


def load_final_state(
    config: RunConfig, model: torch.nn.Module, method: Method, device: torch.device, *, retrain: str
) -> None:
    """Load the weights and method state (e.g. TDE's moving average) the finished run `config` was
    evaluated with (never an older fallback checkpoint); `retrain` says how to train it again."""
    path = _evaluated_weights(config)
    try:
        state = read_checkpoint(path, device)
    except ValueError as error:
        raise UserError(
            f"the final checkpoint {path} of run {config.run_id} is unusable ({error}); train that run "
            f"again: {retrain}"
        ) from error
    model.load_state_dict(state["model"])
    method.load_state_dict(state["method"])


def _check_output(output: str) -> None:
    """The results tree's folders are folders (or can be made), checked before anything trains."""
    for folder in (Path(output), Path(output) / "runs", records_dir(output)):
        if folder.exists() and not folder.is_dir():
            raise UserError(f"{folder} is a file, not a folder; move it away or pass a writable --output")


def _discard_if_code_changed(paths: RunPaths, config: RunConfig, code: dict[str, Any]) -> None:
    """A run folder or record made by other code of the method is discarded (its checkpoint and
    numbers came from that code), with one line saying so; the run then starts from scratch."""
    if distributed.is_main_process():
        other = _other_code(paths, code["digest"])
        if other is not None:
            print(
                f"{config.run_id}: the code of method {config.method} changed since this run was made "
                f"({other} → {code['digest']}); running it again from scratch",
                file=sys.stderr,
            )
            paths.discard()
    distributed.barrier()


def _discard_if_stale(paths: RunPaths) -> None:
    """A record made under an older run identity (`stale_identity`: e.g. another thread count) is
    discarded with its run folder, whose checkpoints came from that run."""
    if distributed.is_main_process() and paths.record.exists():
        try:
            stale = stale_identity(read_record(paths.record))
        except ValueError:
            stale = None
        if stale is not None:
            paths.discard()
    distributed.barrier()


def _other_code(paths: RunPaths, digest: str) -> str | None:
    """The digest ('unknown' when unrecorded) of other method code that made the run folder (else the
    record); None when neither exists or `digest` made them."""
    if paths.folder.exists():
        try:
            made_with = json.loads(paths.code.read_text())["digest"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            made_with = None
    elif paths.record.exists():
        try:
            made_with = recorded_digest(read_record(paths.record))
        except ValueError:
            made_with = None
    else:
        return None
    return None if made_with == digest else made_with or "unknown"


def _check_folder_config(paths: RunPaths, config: RunConfig) -> None:
    """An existing run folder must have been made by the same configuration."""
    config_path = paths.folder / "config.json"
    if not config_path.exists():
        return
    try:
        existing = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError):
        existing = None
    if existing != json.loads(json.dumps(config.identity())):
        raise UserError(
            f"{paths.folder} holds a run of a different configuration; delete that folder to start fresh"
        )


def _claim_folder(paths: RunPaths, config: RunConfig, code: dict[str, Any]) -> None:
    """Create the run folder with the configuration and method code it holds, unless it exists."""
    if (paths.folder / "config.json").exists() or not distributed.is_main_process():
        return
    try:
        paths.folder.mkdir(parents=True, exist_ok=True)
        write_json(paths.code, code)
        write_json(paths.folder / "config.json", config.identity())
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


def _fail(
    config: RunConfig, started: float, code: dict[str, Any], device: torch.device, reason: str, *notes: str
) -> NoReturn:
    """Record the run as failed (rank 0) and stop with one line: the reason, what is kept, the fix."""
    if distributed.is_main_process():
        record = _record(config, started, code, device, status="failed", error=reason, metrics={})
        paths = RunPaths.of(config)
        try:
            if _holds_finished_record(paths.record):  # kept: the failed one goes beside it
                write_json(paths.failed_record, record)
            else:
                write_record(config.output, record)
        except OSError as error:
            notes = (f"the failed record could not be written either ({error.strerror or error})", *notes)
    raise UserError("; ".join(filter(None, [reason, *notes])))


def _holds_finished_record(path: Path) -> bool:
    try:
        return read_record(path)["status"] == "finished"
    except (ValueError, FileNotFoundError):
        return False


def record_identity(config: RunConfig) -> dict[str, Any]:
    """The fields every record of `config` starts with: schema, run id, what ran and its config."""
    return {
        "schema": SCHEMA,
        "run_id": config.run_id,
        "method": config.method,
        "dataset": config.dataset,
        "backbone": config.backbone,
        "seed": config.seed,
        "data_seed": config.data_seed,
        "config": config.to_json(),
    }


def _record(
    config: RunConfig, started: float, code: dict[str, Any], device: torch.device, **fields: Any
) -> dict[str, Any]:
    """A record of `config`: identity, resolved config, method code, environment and the device it
    trained on, then `fields`."""
    return {
        **record_identity(config),
        "method_code": code,
        "stages": stages_record(config),
        **fields,
        **environment(config.precision),
        "device": describe_device(device, distributed.world_size()),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "finished_at": now(),
    }
