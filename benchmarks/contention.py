"""Wall time of `make demo`'s runs on an idle machine against the same runs beside busy processes.

A laptop with a browser open, a shared login node or a CI runner gives lt-bench fewer cores than it
sees. This runs the demo's sweep (`lt-bench sweep --methods ce causal_tde --dataset mnist_lt`)
twice into fresh folders, alternating: once alone, once with `--competitors` CPU-bound processes
(pure-Python busy loops) running the whole time, and prints each wall time and the ratio
contended / idle (the target: at most about 3× with two competitors on two cores).

    python benchmarks/contention.py [--seeds 0 1 2] [--epochs E] [--competitors 2] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LT_BENCH = [sys.executable, "-m", "lt_bench.cli"]


def busy_loop() -> None:
    """A CPU-bound competitor: spins until terminated."""
    value = 0
    while True:
        value = (value * 31 + 7) % 1_000_003


def demo_seconds(output: Path, args: argparse.Namespace) -> float:
    """Wall time of the demo's sweep into `output`."""
    command = [*LT_BENCH, "sweep", "--methods", "ce", "causal_tde", "--dataset", "mnist_lt"]
    command += ["--seeds", *map(str, args.seeds), "--output", str(output)]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return time.perf_counter() - started


def contended_seconds(output: Path, args: argparse.Namespace) -> float:
    competitors = [multiprocessing.Process(target=busy_loop, daemon=True) for _ in range(args.competitors)]
    for competitor in competitors:
        competitor.start()
    try:
        return demo_seconds(output, args)
    finally:
        for competitor in competitors:
            competitor.terminate()
            competitor.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="fewer epochs than the recipe's for a quick check")
    parser.add_argument("--competitors", type=int, default=2)
    parser.add_argument("--threads", type=int, help="passed to lt-bench (default: lt-bench's default)")
    parser.add_argument("--json", type=Path, help="also write the times and ratio here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        idle = demo_seconds(Path(folder) / "idle", args)
        contended = contended_seconds(Path(folder) / "contended", args)
    ratio = contended / idle
    print(f"idle:      {idle:7.1f} s")
    print(f"contended: {contended:7.1f} s ({args.competitors} busy processes on {os.cpu_count()} CPUs)")
    print(f"contended / idle: {ratio:.2f}")
    if args.json:
        result = {"idle_s": idle, "contended_s": contended, "ratio": ratio, "competitors": args.competitors}
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
