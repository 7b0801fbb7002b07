"""The `lt-bench` command line: run, sweep, leaderboard, report, list."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lt_bench.errors import UserError


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
    group = parser.add_argument_group("overrides of the dataset recipe")
    group.add_argument("--backbone", help="any timm model name (default: the dataset's recipe)")
    group.add_argument("--epochs", type=int)
    group.add_argument("--batch-size", type=int, help="global batch; the recipe lr scales with it")
    group.add_argument("--lr", type=float)
    group.add_argument("--weight-decay", type=float)
    group.add_argument("--momentum", type=float)
    group.add_argument("--schedule", choices=("cosine", "multistep"))
    group.add_argument("--warmup-epochs", type=int)
    group.add_argument("--milestones", type=int, nargs="*")
    group.add_argument("--lr-decay", type=float, help="multistep factor at each milestone")
    group.add_argument("--imbalance-ratio", type=float)
    group.add_argument("--knob", type=_knob, action="append", default=[], metavar="NAME=VALUE",
                       help="fix a test-time knob instead of selecting it on validation (e.g. alpha=2.0)")
    place = parser.add_argument_group("data and output")
    place.add_argument("--data-seed", type=int, default=0, help="seed of the long-tailed subset (default 0)")
    place.add_argument("--data-root", help="folder holding the dataset's files")
    place.add_argument("--download", action="store_true", help="download the dataset when a network is there")
    place.add_argument("--output", default="results", help="results tree (default: results)")
    place.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    place.add_argument("--rerun", action="store_true", help="discard a finished run of this config and train again")


def _config(args: argparse.Namespace, method: str, dataset: str, seed: int) -> Any:
    from lt_bench.config import resolve_config

    return resolve_config(
        method, dataset, backbone=args.backbone, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, momentum=args.momentum, schedule=args.schedule,
        warmup_epochs=args.warmup_epochs, milestones=tuple(args.milestones) if args.milestones is not None else None,
        lr_decay=args.lr_decay, imbalance_ratio=args.imbalance_ratio, seed=seed, data_seed=args.data_seed,
        knobs=dict(args.knob) or None, data_root=args.data_root, output=args.output, device=args.device,
        download=args.download or None,
    )


def _execute(config: Any, rerun: bool) -> dict[str, Any]:
    from lt_bench.runner import RunPaths, finished_record, run

    existing = finished_record(config)
    if existing is not None and not rerun:
        print(f"{config.run_id}: already finished, record {RunPaths.of(config).record} (--rerun trains again)")
        return existing
    if rerun:
        paths = RunPaths.of(config)
        shutil.rmtree(paths.folder, ignore_errors=True)
        paths.record.unlink(missing_ok=True)
    record = run(config)
    test = record["metrics"]["test"]
    shots = "  ".join(f"{g} {_percent(test[g])}" for g in ("many", "medium", "few"))
    knobs = " ".join(f"{k}={v:g}" for k, v in record["knobs"]["selected"].items())
    print(f"{config.run_id}: top1 {_percent(test['top1'])}  {shots}  {knobs}  ({record['wall_time_s']:.1f} s)")
    return record


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def command_run(args: argparse.Namespace) -> None:
    _execute(_config(args, args.method, args.dataset, args.seed), args.rerun)


def command_sweep(args: argparse.Namespace) -> None:
    from lt_bench.method import METHODS

    methods = METHODS.names() if args.methods == ["all"] else args.methods
    for name in methods:
        METHODS.get(name)
    configs = [_config(args, m, d, s) for d in args.dataset for m in methods for s in args.seeds]
    started = time.perf_counter()
    for index, config in enumerate(configs, 1):
        print(f"[{index}/{len(configs)}] ", end="", flush=True)
        _execute(config, args.rerun)
    print(f"sweep of {len(configs)} runs took {time.perf_counter() - started:.1f} s")
    _write_leaderboard(args.output, None)


def command_leaderboard(args: argparse.Namespace) -> None:
    _write_leaderboard(args.output, args.write)


def _read_records(output: str) -> list[dict[str, Any]]:
    """The finished records under `output`, naming each unreadable one on stderr."""
    from lt_bench.records import iter_records

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = list(iter_records(output))
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    return records


def _write_leaderboard(output: str, destination: str | None) -> None:
    from lt_bench.atomic import write_atomically
    from lt_bench.leaderboard import leaderboard_markdown

    markdown = leaderboard_markdown(_read_records(output))
    path = Path(destination) if destination else Path(output) / "leaderboard.md"
    write_atomically(path, lambda handle: handle.write(markdown.encode()))
    print(markdown, end="")
    print(f"(written to {path})")


def command_report(args: argparse.Namespace) -> None:
    from lt_bench.report import write_report

    page = write_report(_read_records(args.output), args.dataset, args.output, args.baseline)
    print(f"report written to {page} (figures in {page.with_suffix('')}/)")


def command_list(args: argparse.Namespace) -> None:
    if args.what == "backbones":
        import timm

        import lt_bench.backbones  # noqa: F401  registers lt-bench's own backbones into timm

        for name in timm.list_models(args.pattern or "*"):
            print(name)
        return
    from lt_bench.data import DATASETS
    from lt_bench.method import METHODS
    from lt_bench.registry import describe

    registry = METHODS if args.what == "methods" else DATASETS
    names = registry.names()
    width = max(map(len, names), default=0)
    for name, obj in registry.items():
        print(f"{name:<{width}}  {describe(obj)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lt-bench", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train and evaluate one method on one dataset")
    run.add_argument("--method", required=True)
    run.add_argument("--dataset", required=True)
    run.add_argument("--seed", type=int, default=0)
    add_run_arguments(run)
    run.set_defaults(handler=command_run)

    sweep = commands.add_parser("sweep", help="run methods × datasets × seeds, then regenerate the leaderboard")
    sweep.add_argument("--methods", nargs="+", required=True, help="method names, or 'all'")
    sweep.add_argument("--dataset", nargs="+", required=True)
    sweep.add_argument("--seeds", type=int, nargs="+", default=[0])
    add_run_arguments(sweep)
    sweep.set_defaults(handler=command_sweep)

    board = commands.add_parser("leaderboard", help="regenerate the markdown leaderboard from the records")
    board.add_argument("--output", default="results", help="results tree (default: results)")
    board.add_argument("--write", help="markdown file to write (default: <output>/leaderboard.md)")
    board.set_defaults(handler=command_leaderboard)

    report = commands.add_parser("report", help="per-class and calibration figures, knob curves and paired "
                                 "bootstrap intervals for one dataset, from the records")
    report.add_argument("--dataset", required=True)
    report.add_argument("--baseline", action="append", default=[], metavar="METHOD",
                        help="also compare every method against METHOD (always against ce); repeatable")
    report.add_argument("--output", default="results",
                        help="results tree (default: results); writes <output>/report/<dataset>.md")
    report.set_defaults(handler=command_report)

    listing = commands.add_parser("list", help="list methods, datasets or backbones")
    listing.add_argument("what", choices=("methods", "datasets", "backbones"))
    listing.add_argument("pattern", nargs="?", help="for backbones: a timm wildcard, e.g. 'resnet*'")
    listing.set_defaults(handler=command_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except UserError as error:
        print(f"lt-bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lt-bench: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
