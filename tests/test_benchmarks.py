"""The benchmarks run end to end: the GPU benchmark says in one line that it needs a GPU, and its code
(bf16 autocast, lt-bench's loop and the timm-style loop) runs on the CPU with tiny sizes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _benchmark(script: str, *args: str, cuda_visible: bool = True) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not cuda_visible:
        environment["CUDA_VISIBLE_DEVICES"] = ""
    command = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment)


def test_the_gpu_benchmark_without_a_gpu_says_so_in_one_line_and_succeeds():
    finished = _benchmark("gpu_train.py", cuda_visible=False)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines() == [
        "gpu_train: no CUDA device is visible here; nothing measured (pass --device cpu for a smoke test)"
    ]


def test_the_gpu_benchmark_measures_both_loops_and_projects_both_runs(tmp_path):
    output = tmp_path / "gpu.json"
    args = "--device cpu --steps 1 --batch-size 2 --rounds 1 --json".split()
    finished = _benchmark("gpu_train.py", *args, str(output))
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = json.loads(output.read_text())
    assert [result["run"] for result in results] == [
        "200-epoch CIFAR-10-LT (12,406 images)",
        "90-epoch ImageNet-LT (115,846 images)",
    ]
    for result in results:
        rates = result["images_per_s"]
        assert rates.keys() == {"lt-bench", "bare"} and all(rate > 0 for rate in rates.values())
        assert math.isclose(result["ratio"], rates["lt-bench"] / rates["bare"])
        hours = result["projected_hours"]
        assert hours["lt-bench"] > 0 and hours["bare"] > 0
        assert result["peak_memory_gib"] == {"lt-bench": None, "bare": None}  # no CUDA memory on a CPU
    assert "lt-bench / bare" in finished.stdout


def test_the_input_pipeline_benchmark_times_every_variant(tmp_path):
    output = tmp_path / "cpu.json"
    args = "--steps 1 --batch-size 8 --rounds 1 --pil-workers 0 --threads 1 --json".split()
    finished = _benchmark("input_pipeline.py", *args, str(output))
    assert finished.returncode == 0, finished.stderr[-3000:]
    medians = json.loads(output.read_text())["median_images_per_s"]
    assert set(medians) == {"bare", "pil", "lt-bench", "bare+tde", "lt-bench+tde"}
    assert all(rate > 0 for rate in medians.values())


def test_the_file_loader_benchmark_compares_lt_bench_with_imagefolder(tmp_path):
    output = tmp_path / "files.json"
    args = "--images 24 --classes 3 --side 40 --size 32 --batch-size 8 --workers 0 --rounds 1 --json".split()
    finished = _benchmark("file_loader.py", *args, str(output))
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(output.read_text())
    assert set(result["median_images_per_s"]) == {"imagefolder", "lt-bench"}
    assert math.isclose(
        result["ratio"],
        result["median_images_per_s"]["lt-bench"] / result["median_images_per_s"]["imagefolder"],
    )


def test_the_contention_benchmark_times_the_demo_alone_and_beside_busy_processes(tmp_path):
    output = tmp_path / "contention.json"
    args = "--seeds 0 --epochs 1 --competitors 1 --json".split()
    finished = _benchmark("contention.py", *args, str(output))
    assert finished.returncode == 0, finished.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["idle_s"] > 0 and result["contended_s"] > 0 and result["competitors"] == 1
    assert math.isclose(result["ratio"], result["contended_s"] / result["idle_s"])


def test_the_scale_rehearsal_times_every_stage_on_both_shapes(tmp_path):
    output = tmp_path / "scale.json"
    args = "--fraction 0.002 --records 12 --shift-records 6 --threads 1 --json".split()
    finished = _benchmark("scale.py", *args, str(output))
    assert finished.returncode == 0, finished.stderr[-3000:] + finished.stdout[-3000:]
    results = json.loads(output.read_text())
    assert [(result["shape"], result["stage"]) for result in results] == [
        ("imagenet_lt", "train"),
        ("imagenet_lt", "evaluate"),
        ("imagenet_lt", "leaderboard"),
        ("inat2018", "train"),
        ("inat2018", "evaluate"),
        ("inat2018", "test-shift"),
        ("inat2018", "export"),
        ("inat2018", "report"),
    ]
    for result in results:
        assert result["wall_s"] > 0 and result["cpu_s"] > 0 and result["peak_mib"] > 0
    assert all(result["record_kib"] > 0 for result in results if result["stage"] == "train")
    tabulating = [result for result in results if result["stage"] not in ("train", "evaluate", "report")]
    assert tabulating and not any(result["torch_imported"] for result in tabulating)  # no torch needed
    assert "over 12 records" in finished.stdout and "over 6 records" in finished.stdout
