"""The `lt-bench` command line: run, sweep, tune, status, leaderboard, report, data check, list."""

from __future__ import annotations

import argparse
import fnmatch
import os
import shutil
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, NoReturn

from lt_bench.errors import UserError

DEBUG_HELP = "print the full traceback behind an error (also: LT_BENCH_DEBUG=1), e.g. for a plugin's author"


def _knob(text: str) -> tuple[str, float]:
    name, separator, value = text.partition("=")
    try:
        if not separator or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER (e.g. alpha=2.0), got {text!r}") from None


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Training overrides shared by `run` and `sweep`; unset ones come from the dataset's recipe."""
    parser.add_argument(
        "--protocol",
        choices=("shared", "paper", "tuned"),
        help="shared: the dataset's recipe for every method (default); paper: the method's paper's "
        "recipe; tuned: the best trial of the method's `lt-bench tune` study",
    )
    parser.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="tune: the trials of each method's study; --protocol tuned: train the best trial of the "
        "study of N trials (needed when several budgets were tuned)",
    )
    group = parser.add_argument_group("overrides of the protocol's recipe")
    group.add_argument("--backbone", help="any timm model name (default: the dataset's recipe)")
    group.add_argument("--epochs", type=int)
    group.add_argument("--batch-size", type=int, help="global batch; the recipe lr scales with it")
    group.add_argument("--lr", type=float)
    group.add_argument("--weight-decay", type=float)
    group.add_argument("--momentum", type=float)
    group.add_argument("--schedule", choices=("cosine", "multistep"))
    group.add_argument("--warmup-epochs", type=int)
    group.add_argument(
        "--warmup-start", type=float, help="warm-up starts at this fraction of the lr (0: LDAM-DRW's ramp)"
    )
    group.add_argument("--nesterov", action=argparse.BooleanOptionalAction, help="Nesterov momentum")
    group.add_argument(
        "--select",
        choices=("last", "best-val"),
        help="test the last epoch's weights or the best epoch on the validation split",
    )
    group.add_argument("--milestones", type=int, nargs="*")
    group.add_argument("--lr-decay", type=float, help="multistep factor at each milestone")
    group.add_argument("--imbalance-ratio", type=float)
    group.add_argument(
        "--second-stage-epochs",
        type=int,
        help="a two-stage method's second-stage epochs (default: its official ones; --epochs is stage 1's)",
    )
    group.add_argument(
        "--second-stage-lr",
        type=float,
        help="the second stage's lr at the run's batch (default: its official lr scaled to the batch)",
    )
    group.add_argument(
        "--second-stage-weight-decay", type=float, help="the second stage's weight decay (default: official)"
    )
    group.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        help="the backbone's autocast (default auto: bf16 on a GPU that has it, else fp32); in the run id",
    )
    group.add_argument(
        "--knob",
        type=_knob,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="fix a test-time knob instead of selecting it on validation (e.g. alpha=2.0)",
    )
    group.add_argument(
        "--option",
        type=_knob,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a constant of the method (e.g. gamma=2.0 for focal); `lt-bench tune --method M "
        "--show-space` lists them",
    )
    group.add_argument(
        "--pretrained", action="store_true", help="start from timm's published weights of the backbone"
    )
    group.add_argument(
        "--pretrained-file", metavar="PATH", help="start the backbone from a local state dict file"
    )
    group.add_argument(
        "--pretraining-data",
        choices=("same", "external"),
        help="what the --pretrained-file was trained on: this dataset's training images (same) or "
        "other data (external); shown in the leaderboard's Pretraining column",
    )
    group.add_argument(
        "--finetune",
        choices=("full", "linear", "peft"),
        help="what of the backbone trains: full (default), linear (frozen, features cached once: no "
        "augmentation), peft (adapters in a ViT's blocks, the rest frozen)",
    )
    group.add_argument(
        "--peft", choices=("lora", "adaptformer"), help="the adapter of --finetune peft (default adaptformer)"
    )
    group.add_argument(
        "--peft-rank",
        type=int,
        metavar="R",
        help="rank of LoRA / bottleneck of AdaptFormer (default: LIFT's 2^floor(log2(classes / 2·depth)))",
    )
    group.add_argument(
        "--test-crops",
        type=int,
        choices=(1, 5, 10),  # lt_bench.test_crops.CROP_COUNTS
        help="average the test logits over 5 crops of each image enlarged by 24/224 (10: and their "
        "mirror images), as LIFT's test-time ensembling; default 1 (no ensembling)",
    )
    place = parser.add_argument_group("data and output")
    place.add_argument("--data-seed", type=int, default=0, help="seed of the long-tailed subset (default 0)")
    place.add_argument("--data-root", help="folder holding the dataset's files")
    place.add_argument("--download", action="store_true", help="download the dataset when a network is there")
    place.add_argument("--custom-lists", action="store_true", help="split lists not the published ones")
    place.add_argument(
        "--num-workers",
        type=int,
        help="loader workers of image-file datasets (default: the CPUs the process may use)",
    )
    place.add_argument("--output", default="results", help="results tree (default: results)")
    place.add_argument(
        "--device",
        help="torch device: auto (default: the local GPU when one is visible, else cpu), cpu, cuda, cuda:1",
    )
    place.add_argument(
        "--rerun", action="store_true", help="discard a finished run of this config and train again"
    )
    place.add_argument(
        "--threads",
        type=int,
        help="CPU threads of torch (default 1); float sums, hence the numbers, depend on it, so a count "
        "other than 1 is part of the run id",
    )
    place.add_argument(
        "--checkpoint-every",
        type=float,
        metavar="SECONDS",
        help="also checkpoint mid-epoch this often (default 120; every epoch end checkpoints)",
    )
    place.add_argument(
        "--val-every",
        type=int,
        metavar="N",
        help="validation accuracy in the training curve every N epochs (default: about 10 points; 0: none)",
    )
    place.add_argument(
        "--tensorboard", action="store_true", help="also write TensorBoard event files to the run folder"
    )
    place.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    speed = parser.add_argument_group("speed (same parameters, kernels may round differently)")
    speed.add_argument("--channels-last", action="store_true", help="the model in channels_last format")
    speed.add_argument("--compile", action="store_true", help="the backbone under torch.compile")
    from lt_bench.launch.profiles import add_launch_arguments

    add_launch_arguments(parser)


def _config(args: argparse.Namespace, method: str, dataset: str, seed: int) -> Any:
    if args.protocol == "tuned":
        from lt_bench.tuning import tuned_config

        shared = argparse.Namespace(**{**vars(args), "protocol": "shared"})
        return tuned_config(_config(shared, method, dataset, seed), args.trials)
    return _recipe_config(args, method, dataset, seed)


def _recipe_config(args: argparse.Namespace, method: str, dataset: str, seed: int) -> Any:
    from lt_bench.config import resolve_config

    return resolve_config(
        method,
        dataset,
        protocol=args.protocol,
        backbone=args.backbone,
        pretrained=args.pretrained or None,
        pretrained_file=args.pretrained_file,
        pretraining_data=args.pretraining_data,
        finetune=args.finetune,
        peft=args.peft,
        peft_rank=args.peft_rank,
        test_crops=args.test_crops,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        momentum=args.momentum,
        schedule=args.schedule,
        warmup_epochs=args.warmup_epochs,
        warmup_start=args.warmup_start,
        nesterov=args.nesterov,
        select=args.select,
        milestones=tuple(args.milestones) if args.milestones is not None else None,
        lr_decay=args.lr_decay,
        imbalance_ratio=args.imbalance_ratio,
        second_stage_epochs=args.second_stage_epochs,
        second_stage_lr=args.second_stage_lr,
        second_stage_weight_decay=args.second_stage_weight_decay,
        precision=args.precision,
        seed=seed,
        data_seed=args.data_seed,
        knobs=_pairs(args.knob, "--knob") or None,
        method_options=_pairs(args.option, "--option") or None,
        data_root=args.data_root,
        output=args.output,
        device=args.device,
        download=args.download or None,
        custom_lists=args.custom_lists or None,
        num_workers=args.num_workers,
        checkpoint_seconds=args.checkpoint_every,
        channels_last=args.channels_last or None,
        compile=args.compile or None,
        threads=args.threads,
        val_every=args.val_every,
        tensorboard=args.tensorboard or None,
    )


def _pairs(pairs: list[tuple[str, float]], flag: str) -> dict[str, float]:
    """`--knob` or `--option` NAME=VALUE pairs as a dict; a name given twice is refused (which one
    would count?)."""
    names = [name for name, _ in pairs]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"{flag} {name} is given {names.count(name)} times; pass each {flag[2:]} once")
    return dict(pairs)


def _execute(config: Any, rerun: bool) -> dict[str, Any]:
    from lt_bench.runner import RunPaths, finished_record, run

    existing = finished_record(config)
    if existing is not None and not rerun:
        print(
            f"{config.run_id}: already finished, record {RunPaths.of(config).record} (--rerun trains again)"
        )
        return existing
    record = run(config, rerun=rerun)
    test = record["metrics"]["test"]
    shots = "  ".join(f"{g} {_percent(test[g])}" for g in ("many", "medium", "few"))
    knobs = " ".join(f"{k}={v:g}" for k, v in record["knobs"]["selected"].items())
    print(
        f"{config.run_id}: top1 {_percent(test['top1'])}  {shots}  {knobs}  ({record['wall_time_s']:.1f} s)"
    )
    print(f"record written to {RunPaths.of(config).record}")
    return record


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def command_run(args: argparse.Namespace) -> None:
    from lt_bench.detection.data import DETECTION_DATASETS

    if args.dataset in DETECTION_DATASETS:
        _run_detection(args)
        return
    config = _config(args, args.method, args.dataset, args.seed)
    if args.launcher == "slurm":
        _submit(args, [config])
        return
    _execute(config, args.rerun)


def _run_detection(args: argparse.Namespace) -> None:
    """An instance segmentation run on this machine (its own runner: lt_bench.detection.run)."""
    from lt_bench.detection.run import resolved_config, run_detection

    if args.protocol == "paper" or args.launcher == "slurm":
        raise UserError(
            "instance segmentation runs have the shared recipe on this machine only so far; "
            "drop --protocol paper and --launcher slurm"
        )
    config = resolved_config(
        args.method,
        args.dataset,
        backbone=args.backbone,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        data_seed=args.data_seed,
        data_root=args.data_root,
        output=args.output,
        threads=args.threads,
        knobs=_pairs(args.knob, "--knob") or None,
    )
    if args.rerun:
        shutil.rmtree(Path(config.output) / "runs" / config.run_id, ignore_errors=True)
    record = run_detection(config)
    test = record["metrics"]["test"]
    scores = "  ".join(f"{name} {_percent(test[name])}" for name in ("AP", "APr", "APc", "APf", "box_AP"))
    knobs = " ".join(f"{k}={v:g}" for k, v in record["knobs"]["selected"].items())
    print(f"{config.run_id}: mask {scores}  {knobs}  ({record['wall_time_s']:.1f} s)")


def _submit(args: argparse.Namespace, configs: list[Any]) -> None:
    if getattr(args, "jobs", 1) != 1:
        raise UserError(
            "--jobs runs local runs at once; SLURM runs every job as the cluster allows: drop --jobs"
        )
    from lt_bench.launch.profiles import resource_overrides
    from lt_bench.launch.slurm import launch

    launch(
        configs,
        cluster=args.cluster,
        overrides=resource_overrides(args),
        rerun=args.rerun,
        precision_given=args.precision not in (None, "auto"),
        force=args.force,
    )


def command_tune(args: argparse.Namespace) -> None:
    """`--show-space` of one method, or one study per method: ask, train and tell its trials."""
    from lt_bench.method import METHODS
    from lt_bench.tuning import Study, run_studies, show_space

    if args.protocol == "tuned":
        raise UserError("lt-bench tune starts from the shared or paper recipe; drop --protocol tuned")
    if args.show_space:
        for name in args.methods if args.methods != ["all"] else METHODS.names():
            print(show_space(_config(args, name, args.dataset, 0)))
        return
    if args.trials is None:
        raise UserError("pass --trials N, the number of trials each method's study gets")
    methods = METHODS.names() if args.methods == ["all"] else args.methods
    studies = [
        Study(_config(args, name, args.dataset, args.seeds[0]), tuple(args.seeds), args.trials,
              args.sampler, args.pruner)
        for name in methods
    ]  # fmt: skip
    run_studies(studies, jobs=args.jobs, launcher=args.launcher, cluster=args.cluster, args=args)


def command_recipe(args: argparse.Namespace) -> None:
    import json

    from lt_bench.runner import on_this_machine
    from lt_bench.stages import run_stages

    config = on_this_machine(_config(args, args.method, args.dataset, args.seed))
    if args.json:
        print(json.dumps(config.to_json(), indent=1, sort_keys=True))
        return
    width = max(map(len, config.to_json()))
    for name, value in config.to_json().items():
        print(f"{name:<{width}}  {value}")
    for number, stage in enumerate(run_stages(config), start=1):
        print(f"stage {number}  {stage.describe()}")


def command_reproduce(args: argparse.Namespace) -> None:
    from lt_bench.atomic import write_atomically
    from lt_bench.records import iter_records
    from lt_bench.reproduce import paper_list, paper_named, reproduction_markdown, reproduction_rows

    if args.list:
        print(paper_list())
        return
    if not args.paper:
        raise UserError("name a paper to reproduce (see lt-bench reproduce --list)")
    if args.protocol == "shared":
        raise UserError("lt-bench reproduce trains under the paper protocol; drop --protocol shared")
    args.protocol = "paper"

    def make_config(method: str, dataset: str, ratio: float | None, seed: int) -> Any:
        given = args.imbalance_ratio
        row_args = argparse.Namespace(**{**vars(args), "imbalance_ratio": ratio if given is None else given})
        return _config(row_args, method, dataset, seed)

    rows = reproduction_rows(args.paper, args.datasets, args.seeds, make_config)
    configs = list({c.run_id: c for row in rows for c in row.configs}.values())
    failures = []
    if args.launcher == "slurm":
        _submit(args, configs)
    else:
        failures = _execute_all(configs, args.rerun, _debug(args), args.jobs)
    records = {record["run_id"]: record for record in iter_records(args.output)}
    paper, _ = paper_named(args.paper)
    page = Path(args.output) / "reproduction" / f"{paper.key}.md"
    markdown = reproduction_markdown(paper, rows, records)
    write_atomically(page, lambda handle: handle.write(markdown.encode()))
    print(markdown, end="")
    print(f"(written to {page})")
    _raise_failures(failures, len(configs))


def command_status(args: argparse.Namespace) -> None:
    from lt_bench.launch.status import run_statuses, status_table

    statuses = run_statuses(args.output)
    if not statuses:
        raise UserError(
            f"no runs in {args.output}: none submitted to SLURM (slurm/jobs.jsonl) or started here "
            f"(runs/); start one with lt-bench run or sweep, or pass the --output they used"
        )
    print(status_table(statuses), end="")


def command_sweep(args: argparse.Namespace) -> None:
    """Every run of methods × datasets × seeds; one that fails is listed at the end, the others go on."""
    from lt_bench.method import METHODS

    methods = METHODS.names() if args.methods == ["all"] else args.methods
    for name in methods:
        METHODS.get(name)
    configs = [_config(args, m, d, s) for d in args.dataset for m in methods for s in args.seeds]
    if args.launcher == "slurm":
        _submit(args, configs)
        return
    started = time.perf_counter()
    failures = _execute_all(configs, args.rerun, _debug(args), args.jobs)
    print(f"sweep of {len(configs)} runs took {time.perf_counter() - started:.1f} s")
    _write_leaderboard(args.output, None)
    _raise_failures(failures, len(configs))


def _execute_all(configs: list[Any], rerun: bool, debug: bool, jobs: int = 1) -> list[str]:
    """Run each config, `jobs` at a time (worker processes, each run with its own --threads); one
    that fails is reported and the others go on. The failures, in the configs' order."""
    from lt_bench.runner import check_names

    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    for config in configs:  # input errors that concern every run stop before anything runs
        check_names(config)
    labels = [f"[{index}/{len(configs)}]" for index in range(1, len(configs) + 1)]
    if jobs == 1 or len(configs) == 1:
        outcomes = [
            _execute_reporting(config, rerun, debug, label)
            for config, label in zip(configs, labels, strict=True)
        ]
    else:
        outcomes = _execute_in_workers(configs, rerun, debug, labels, jobs)
    return [failure for failure in outcomes if failure is not None]


def _execute_in_workers(
    configs: list[Any], rerun: bool, debug: bool, labels: list[str], jobs: int
) -> list[str | None]:
    """`_execute_reporting` of every config in `jobs` spawned processes (each imports torch once and
    runs one config after another); a worker that dies fails the runs it had not finished."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [
            pool.submit(_execute_reporting, config, rerun, debug, label)
            for config, label in zip(configs, labels, strict=True)
        ]
        outcomes: list[str | None] = []
        for config, future in zip(configs, futures, strict=True):
            try:
                outcomes.append(future.result())
            except BrokenProcessPool:
                outcomes.append(f"{config.run_id}: its worker process died (killed?); rerun the same command")
    return outcomes


def _execute_reporting(config: Any, rerun: bool, debug: bool, label: str) -> str | None:
    """Run `config` after printing `label`; its failure line, or None."""
    print(f"{label} ", end="", flush=True)
    try:
        _execute(config, rerun)
    except UserError as error:
        _show_traceback(error, debug)
        print(f"{config.run_id}: failed: {error}", flush=True)
        return f"{config.run_id}: {error}"
    return None


def _raise_failures(failures: list[str], total: int) -> None:
    """List the failed runs on stderr and end with a non-zero status (after everything was written)."""
    if not failures:
        return
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    raise UserError(
        f"{len(failures)} of {total} runs failed (listed above); fix them and rerun the same "
        f"command: finished runs are kept, the failed ones run again"
    )


def command_leaderboard(args: argparse.Namespace) -> None:
    _write_leaderboard(args.output, args.write, test_shift=args.test_shift, costs=_cost_columns(args.columns))


def _cost_columns(text: str | None) -> tuple[str, ...]:
    """`--columns params,flops` as names of leaderboard.COST_COLUMNS; a one-line error otherwise."""
    from lt_bench.leaderboard import COST_COLUMNS
    from lt_bench.registry import did_you_mean

    names = tuple(name.strip() for name in (text or "").split(",") if name.strip())
    for name in names:
        if name not in COST_COLUMNS:
            raise UserError(
                f"--columns has no column {name!r}.{did_you_mean(name, COST_COLUMNS)} "
                f"Choose from: {','.join(COST_COLUMNS)}"
            )
    return names


def _classification_records(output: str) -> list[dict[str, Any]]:
    """The finished records under `output` with their per-image predictions, but those of instance
    segmentation runs (AP, not accuracy: they have none)."""
    return _read_records(output, per_image=True)  # iter_records passes detection records by


def _read_records(output: str, *, per_image: bool = False) -> list[dict[str, Any]]:
    """The finished records under `output`; with `per_image`, those holding per-image predictions,
    read with them (else without their arrays). Each skipped one is named on stderr."""
    from lt_bench.config import stale_identity
    from lt_bench.records import iter_records

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(iter_records(output, per_image=per_image, arrays=per_image))
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    current = []
    for record in records:
        stale = stale_identity(record)
        if stale is None:
            current.append(record)
        else:
            print(f"warning: skipping {stale}; rerun it to count it", file=sys.stderr)
    return current


def _write_leaderboard(
    output: str, destination: str | None, *, test_shift: bool = False, costs: Sequence[str] = ()
) -> None:
    from lt_bench.atomic import write_atomically
    from lt_bench.leaderboard import leaderboard_markdown
    from lt_bench.records import records_dir

    if not records_dir(output).is_dir():
        raise UserError(
            f"no run records under {output}; pass as --output the results tree whose records/ "
            "folder holds them, or run `lt-bench sweep` into it first"
        )
    records = _read_records(output, per_image=test_shift)
    markdown = leaderboard_markdown(records, test_shift=test_shift, costs=costs)
    default = "leaderboard-test-shift.md" if test_shift else "leaderboard.md"
    path = Path(destination) if destination else Path(output) / default
    try:
        write_atomically(path, lambda handle: handle.write(markdown.encode()))
    except OSError as error:
        raise UserError(
            f"cannot write the leaderboard to {path} ({error.strerror or error}); "
            "pass --write FILE in a folder you can write to"
        ) from error
    print(markdown, end="")
    print(f"(written to {path})")


def command_export(args: argparse.Namespace) -> None:
    from lt_bench.export import export
    from lt_bench.records import records_dir

    if not records_dir(args.output).is_dir():
        raise UserError(
            f"no run records under {args.output}; pass as --output the results tree that holds them"
        )
    path = Path(args.to) if args.to else Path(args.output) / f"runs.{args.format}"
    try:
        runs, per_class = export(_classification_records(args.output), path, args.format)
    except OSError as error:
        raise UserError(
            f"cannot write {path} ({error.strerror or error}); pass --to FILE in a folder you can write to"
        ) from error
    print(f"runs written to {runs}, per-class accuracy to {per_class}")


def command_compact(args: argparse.Namespace) -> None:
    from lt_bench.records import compact_records

    rewritten = compact_records(args.output)
    print(f"{rewritten} record(s) under {args.output} rewritten with their arrays in .npz files beside them")


def command_report(args: argparse.Namespace) -> None:
    from lt_bench.report import write_report

    page = write_report(_classification_records(args.output), args.dataset, args.output, args.baseline)
    print(f"report written to {page} (figures in {page.with_suffix('')}/)")


def command_site(args: argparse.Namespace) -> None:
    from lt_bench.records import records_dir
    from lt_bench.site import write_site

    if not records_dir(args.output).is_dir():
        raise UserError(
            f"no run records under {args.output}; pass as --output the results tree whose records/ "
            "folder holds them"
        )
    site = Path(args.to) if args.to else Path(args.output) / "site"
    try:
        index = write_site(_classification_records(args.output), site, records_dir(args.output))
    except OSError as error:
        raise UserError(
            f"cannot write the site to {site} ({error.strerror or error}); pass --to FOLDER you can write to"
        ) from error
    print(f"site written to {site}/; open {index} in a browser")


def command_data_check(args: argparse.Namespace) -> None:
    from lt_bench.data.base import DataOptions
    from lt_bench.data.check import check_dataset
    from lt_bench.detection.data import DETECTION_DATASETS

    if args.dataset in DETECTION_DATASETS:
        from lt_bench.detection.check import check_detection_dataset

        data_root = Path(args.data_root) if args.data_root else None
        print("\n".join(check_detection_dataset(args.dataset, data_root, args.data_seed)))
        return

    options = DataOptions(
        data_root=Path(args.data_root) if args.data_root else None,
        imbalance_ratio=args.imbalance_ratio,
        data_seed=args.data_seed,
        download=args.download,
        custom_lists=args.custom_lists,
    )
    report = check_dataset(args.dataset, options, decode=args.decode)
    print("\n".join([*report.lines, *report.unreadable]))
    if report.unreadable:
        raise UserError(
            f"images that cannot be decoded: {len(report.unreadable)} (named above); replace the files, or "
            f"drop their entries from the lists and pass --custom-lists"
        )


def command_list(args: argparse.Namespace) -> None:
    """Registered methods or datasets with their descriptions, or timm backbone names; PATTERN filters."""
    pattern = args.pattern or "*"
    if args.what == "backbones":
        import timm

        import lt_bench.backbones  # noqa: F401  registers lt-bench's own backbones into timm

        lines = timm.list_models(pattern)
    else:
        from lt_bench.data import DATASETS
        from lt_bench.detection.data import DETECTION_DATASETS
        from lt_bench.method import METHODS
        from lt_bench.registry import describe

        registries = [METHODS] if args.what == "methods" else [DATASETS, DETECTION_DATASETS]
        entries = [
            (name, obj)
            for registry in registries
            for name, obj in registry.items()
            if fnmatch.fnmatchcase(name, pattern)
        ]
        width = max((len(name) for name, _ in entries), default=0)
        lines = [f"{name:<{width}}  {describe(obj)}" for name, obj in entries]
    if not lines:
        raise UserError(f"no {args.what} match {pattern!r}; `lt-bench list {args.what}` names them all")
    print("\n".join(lines))


def _add_jobs_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="local runs trained at once, each in its own process with its --threads (default 1); "
        "keep N × threads within the cores",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lt-bench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lt-bench {version('lt-bench')}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train and evaluate one method on one dataset")
    run.add_argument("--method", required=True)
    run.add_argument("--dataset", required=True)
    run.add_argument("--seed", type=int, default=0)
    add_run_arguments(run)
    run.set_defaults(handler=command_run)

    sweep = commands.add_parser(
        "sweep", help="run methods × datasets × seeds, then regenerate the leaderboard"
    )
    sweep.add_argument("--methods", nargs="+", required=True, help="method names, or 'all'")
    sweep.add_argument("--dataset", nargs="+", required=True)
    sweep.add_argument("--seeds", type=int, nargs="+", default=[0])
    _add_jobs_argument(sweep)
    add_run_arguments(sweep)
    sweep.set_defaults(handler=command_sweep)

    tune = commands.add_parser(
        "tune",
        help="tune each method's search space on validation with Optuna: one study per method",
    )
    tune.add_argument("--methods", "--method", nargs="+", required=True, help="method names, or 'all'")
    tune.add_argument("--dataset", required=True)
    tune.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="tuning seeds; a trial's score is their mean"
    )
    tune.add_argument("--jobs", type=int, default=1, help="trials trained at once (threads divided)")
    tune.add_argument("--sampler", choices=("tpe", "random"), default="tpe")
    tune.add_argument(
        "--pruner", choices=("median", "none"), default="median", help="stop trials on their val curve"
    )
    tune.add_argument("--show-space", action="store_true", help="print what the method's study searches")
    add_run_arguments(tune)
    tune.set_defaults(handler=command_tune)

    recipe = commands.add_parser(
        "recipe", help="print the fully resolved configuration a run would use, without running it"
    )
    recipe.add_argument("--method", required=True)
    recipe.add_argument("--dataset", required=True)
    recipe.add_argument("--seed", type=int, default=0)
    recipe.add_argument("--json", action="store_true", help="exactly the record's `config` object, as JSON")
    add_run_arguments(recipe)
    recipe.set_defaults(handler=command_recipe)

    reproduce = commands.add_parser(
        "reproduce",
        help="run a paper's table rows under --protocol paper and write reported vs reproduced",
    )
    reproduce.add_argument("paper", nargs="?", help="a paper key (see --list)")
    reproduce.add_argument("--list", action="store_true", help="the papers that can be reproduced")
    reproduce.add_argument("--datasets", nargs="+", help="only these datasets' rows (default: all)")
    reproduce.add_argument("--seeds", type=int, nargs="+", default=[0])
    _add_jobs_argument(reproduce)
    add_run_arguments(reproduce)
    reproduce.set_defaults(handler=command_reproduce)

    status = commands.add_parser(
        "status", help="queued, running, finished, failed: the runs of a results tree, on SLURM or local"
    )
    status.add_argument("--output", default="results", help="results tree (default: results)")
    status.set_defaults(handler=command_status)

    board = commands.add_parser("leaderboard", help="regenerate the markdown leaderboard from the records")
    board.add_argument("--output", default="results", help="results tree (default: results)")
    board.add_argument(
        "--write",
        help="markdown file to write (default: <output>/leaderboard.md, with --test-shift "
        "<output>/leaderboard-test-shift.md)",
    )
    board.add_argument(
        "--test-shift",
        action="store_true",
        help="top-1 on long-tailed, uniform and inversely long-tailed test subsamples (LADE / SADE)",
    )
    board.add_argument(
        "--columns", metavar="NAMES", help="add cost columns, comma-separated: params,flops,images,hours"
    )
    board.set_defaults(handler=command_leaderboard)

    report = commands.add_parser(
        "report",
        help="per-class and calibration figures, knob curves and paired "
        "bootstrap intervals for one dataset, from the records",
    )
    report.add_argument("--dataset", required=True)
    report.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="METHOD",
        help="also compare every method against METHOD (always against ce); repeatable",
    )
    report.add_argument(
        "--output",
        default="results",
        help="results tree (default: results); writes <output>/report/<dataset>.md",
    )
    report.set_defaults(handler=command_report)

    site = commands.add_parser(
        "site", help="a static, self-contained results site (sortable tables, charts, a page per run)"
    )
    site.add_argument("--output", default="results", help="results tree (default: results)")
    site.add_argument("--to", metavar="FOLDER", help="where to write the site (default: <output>/site)")
    site.set_defaults(handler=command_site)

    compact = commands.add_parser(
        "compact",
        help="rewrite records that hold their per-image arrays inline (older lt-bench) in the compact "
        "layout: arrays in a .npz beside each record",
    )
    compact.add_argument("--output", default="results", help="results tree (default: results)")
    compact.set_defaults(handler=command_compact)
    exporting = commands.add_parser(
        "export", help="the runs as a table (csv, parquet or jsonl) and per-class accuracy as a long table"
    )
    exporting.add_argument("--output", default="results", help="results tree (default: results)")
    exporting.add_argument("--format", choices=("csv", "parquet", "jsonl"), default="csv")
    exporting.add_argument(
        "--to",
        metavar="FILE",
        help="the runs table (default: <output>/runs.<format>); per-class rows go to FILE-per-class",
    )
    exporting.set_defaults(handler=command_export)

    data = commands.add_parser("data", help="dataset files on disk").add_subparsers(
        dest="data_command", required=True
    )
    check = data.add_parser(
        "check", help="verify a dataset on disk against its published counts and checksums"
    )
    check.add_argument("dataset")
    check.add_argument("--data-root", help="folder holding the dataset's files")
    check.add_argument(
        "--imbalance-ratio", type=float, help="for generated long tails (default: the dataset's)"
    )
    check.add_argument("--data-seed", type=int, default=0)
    check.add_argument(
        "--download", action="store_true", help="fetch missing split lists when a network is there"
    )
    check.add_argument(
        "--custom-lists",
        action="store_true",
        help="split lists other than the published ones: check them, but compare nothing with the published",
    )
    check.add_argument(
        "--decode", action="store_true", help="also open and fully decode every image, in parallel"
    )
    check.set_defaults(handler=command_data_check)

    listing = commands.add_parser("list", help="list methods, datasets or backbones")
    listing.add_argument("what", choices=("methods", "datasets", "backbones"))
    listing.add_argument("pattern", nargs="?", help="a wildcard over the names, e.g. 'resnet*' or 'ldam*'")
    listing.set_defaults(handler=command_list)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse whose bad-argument errors are one-line UserErrors rather than usage text."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see {self.prog} --help)")


def _silence_other_ranks() -> None:
    """Under torchrun, only rank 0 prints to stdout (the others would print the same lines)."""
    if os.environ.get("RANK", "0") != "0":
        sys.stdout = open(os.devnull, "w")  # open for the life of the process


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    print(f"lt-bench: warning: {message}", file=sys.stderr)


def _debug(args: argparse.Namespace | None) -> bool:
    """Whether errors show their full traceback: --debug, or LT_BENCH_DEBUG set to other than 0."""
    return bool(getattr(args, "debug", False)) or os.environ.get("LT_BENCH_DEBUG", "0") not in ("", "0")


def _show_traceback(error: BaseException, debug: bool) -> None:
    if debug:
        traceback.print_exception(error, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    _silence_other_ranks()
    args = None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            args = build_parser().parse_args(argv)
            args.handler(args)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:  # the reader stopped early (`lt-bench list backbones | head -1`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141  # 128 + SIGPIPE, as a shell reports a command whose pipe was closed
    except UserError as error:
        _show_traceback(error, _debug(args))
        print(f"lt-bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "lt-bench: interrupted; rerun the same command to resume from the last checkpoint",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
