"""`--device auto`, `--precision`, what the record says about them, and the speed defaults that do not
change a run's identity (channels_last on CUDA, loader workers)."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn.functional as F

from lt_bench.backbones import LongTailClassifier, accelerate, create_backbone
from lt_bench.cli import main
from lt_bench.config import resolve_config
from lt_bench.data.base import TensorAugmentation, augment
from lt_bench.data.files import default_num_workers
from lt_bench.devices import cpu_model
from lt_bench.launch.profiles import Resources
from lt_bench.launch.slurm import job_config
from lt_bench.precision import auto_precision, native_bf16

CUDA = torch.cuda.is_available()


@pytest.mark.parametrize(
    ("device_type", "native", "expected"),
    [("cuda", True, "bf16"), ("cuda", False, "fp32"), ("cpu", True, "fp32")],
)
def test_auto_precision_is_bf16_only_on_a_gpu_that_computes_it(device_type, native, expected):
    assert auto_precision(device_type, native) == expected


def test_auto_is_resolved_in_the_config_and_names_the_run(tmp_path):
    auto = resolve_config("ce", "digits_lt", output=str(tmp_path))
    here = "bf16" if CUDA and native_bf16(torch.device("cuda")) else "fp32"
    assert (auto.device, auto.precision) == ("auto", here)
    on_cpu = resolve_config("ce", "digits_lt", device="cpu", output=str(tmp_path))
    assert on_cpu.precision == "fp32"
    bf16 = resolve_config("ce", "digits_lt", precision="bf16", output=str(tmp_path))
    assert bf16.precision == "bf16" and bf16.run_id != on_cpu.run_id
    assert on_cpu.replace(device="cuda:3").run_id == on_cpu.run_id  # the device is placement only


def test_the_record_names_the_precision_and_the_device_it_ran_on(tmp_path, capsys):
    argv = "run --method ce --dataset digits_lt --epochs 1 --precision bf16 --output".split()
    assert main([*argv, str(tmp_path)]) == 0
    (path,) = (tmp_path / "records").glob("*.json")
    record = json.loads(path.read_text())
    assert record["precision"] == record["config"]["precision"] == "bf16"
    assert record["config"]["device"] == "auto"
    if CUDA:
        assert record["device"] == {"type": "cuda", "name": torch.cuda.get_device_name(), "count": 1}
    else:
        assert record["device"] == {"type": "cpu", "name": cpu_model(), "count": 1}
        assert record["device"]["name"]


def test_an_unknown_precision_is_one_line(capsys):
    argv = "run --method ce --dataset digits_lt --precision half".split()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "argument --precision: invalid choice: 'half'" in err


@pytest.mark.parametrize(
    ("gpus", "device", "given", "expected"),
    [
        (4, "auto", None, "bf16"),  # the job's GPUs, where auto finds them
        (0, "auto", None, "fp32"),
        (4, "cpu", None, "fp32"),
        (4, "auto", "fp32", "fp32"),
        (0, "auto", "fp16", "fp16"),
    ],
)
def test_a_slurm_job_resolves_auto_precision_for_its_node(gpus, device, given, expected, tmp_path):
    config = resolve_config(
        "ce", "digits_lt", device=device, precision=given, output=str(tmp_path / "relative")
    )
    job = job_config(config, Resources(gpus_per_node=gpus), precision_given=given is not None)
    assert job.precision == expected
    assert job.device == device  # the node resolves `auto` itself
    assert job.output == str((tmp_path / "relative").resolve())


def _memory_formats(model: torch.nn.Module) -> set[bool]:
    return {p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4}


@pytest.mark.parametrize(
    ("backbone", "device", "channels_last"),
    [
        ("resnet32_cifar", "cuda", True),  # a convolutional backbone on CUDA: by default
        ("resnet32_cifar", "cpu", False),
        ("vit_tiny_patch16_224", "cuda", False),  # one patch-embedding convolution only
    ],
)
def test_channels_last_is_the_default_for_convolutional_backbones_on_cuda(backbone, device, channels_last):
    model = LongTailClassifier(create_backbone(backbone, 3), torch.nn.Identity())
    accelerate(model, channels_last=False, compile=False, device=torch.device(device))  # moves nothing
    assert _memory_formats(model) == {channels_last}


def test_loader_workers_default_to_the_cpus_the_process_may_use(monkeypatch):
    usable = len(os.sched_getaffinity(0))
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_num_workers() == usable
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(usable))  # torchrun: one process per share of them
    assert default_num_workers() == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert default_num_workers() == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", str(usable + 64))  # never more than the affinity
    assert default_num_workers() == usable


def test_the_per_batch_crop_and_flip_are_the_seeded_draws():
    images = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).reshape(2, 1, 3, 3)
    seed = 1  # draws rows (1, 2), columns (0, 2), flips (yes, no)
    draws = torch.Generator().manual_seed(seed)  # rows, columns, then flips, as documented
    rows, cols = (torch.randint(0, 3, (2,), generator=draws) for _ in range(2))
    flips = torch.rand(2, generator=draws) < 0.5
    padded = F.pad(images, (1, 1, 1, 1))
    expected = torch.stack([padded[i, :, rows[i] : rows[i] + 3, cols[i] : cols[i] + 3] for i in range(2)])
    expected = torch.where(flips[:, None, None, None], expected.flip(-1), expected)
    augmentation = TensorAugmentation(crop_padding=1, horizontal_flip=True)
    assert torch.equal(augment(images, augmentation, torch.Generator().manual_seed(seed)), expected)
