"""Wall time of a local sweep run one run at a time against `--jobs N` runs at once.

Runs `lt-bench sweep --methods … --dataset mnist_lt --seeds …` into fresh folders, alternating
`--jobs 1` and `--jobs N` (`--repeats` times each), prints each wall time, the ratio jobs-N / jobs-1
and whether the two produced the same records (same run ids, metrics and per-image predictions).

    python benchmarks/sweep_jobs.py [--methods ce causal_tde] [--seeds 0 1 2] [--jobs 2] [--epochs E]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LT_BENCH = [sys.executable, "-m", "lt_bench.cli"]


def sweep_seconds(output: Path, jobs: int, args: argparse.Namespace) -> float:
    """Wall time of the sweep into `output` with `jobs` runs at once."""
    command = [*LT_BENCH, "sweep", "--methods", *args.methods, "--dataset", args.dataset, "--jobs", str(jobs)]
    command += ["--seeds", *map(str, args.seeds), "--output", str(output)]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def outcomes(output: Path) -> dict[str, object]:
    """What each run computed, by run id: its metrics and per-image predictions."""
    from lt_bench.records import iter_records

    return {
        record["run_id"]: (record["metrics"], record["test_predictions"])
        for record in iter_records(output, per_image=True)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["ce", "causal_tde"])
    parser.add_argument("--dataset", default="mnist_lt")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, help="fewer epochs than the recipe's for a quick check")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the times and ratio here")
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], args.jobs: []}
    same = True
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            outputs = {jobs: Path(folder) / f"jobs{jobs}-{repeat}" for jobs in times}
            for jobs, output in outputs.items():
                times[jobs].append(sweep_seconds(output, jobs, args))
            same = same and outcomes(outputs[1]) == outcomes(outputs[args.jobs])
    one, many = statistics.median(times[1]), statistics.median(times[args.jobs])
    print(f"--jobs 1:  {one:7.1f} s")
    print(f"--jobs {args.jobs}:  {many:7.1f} s")
    print(f"jobs {args.jobs} / jobs 1: {many / one:.2f}; same records: {'yes' if same else 'NO'}")
    if args.json:
        result = {"jobs_1_s": one, f"jobs_{args.jobs}_s": many, "ratio": many / one, "same_records": same}
        args.json.write_text(json.dumps(result, indent=2))
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
