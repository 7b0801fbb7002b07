"""A plugin outside the repository uses each of the contract's newer hooks — batch mixing with its own
second-batch sampler, several views with `loss_with_features`, optimizer parameter groups and a
step-end weight constraint — through `lt-bench run` and the conformance suite, installed the way
`pip install` would (tests/plugin_hooks/ltb_hook_demo.py, a `*.dist-info` with its entry points)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPOSITORY = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).resolve().parent / "plugin_hooks" / "ltb_hook_demo.py"
ENTRY_POINTS = {
    "demo_mixing": "ltb_hook_demo:RareMixupWithGroups",
    "demo_two_views": "ltb_hook_demo:TwoViewAgreement",
}
TRAINING_IMAGES = 486  # digits_lt


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """What `pip install ltb-hook-demo` leaves in site-packages: the module and its dist-info."""
    site = tmp_path_factory.mktemp("hook-site")
    shutil.copy(PLUGIN, site / PLUGIN.name)
    dist_info = site / "ltb_hook_demo-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: ltb-hook-demo\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in ENTRY_POINTS.items())
    (dist_info / "entry_points.txt").write_text(f"[lt_bench.methods]\n{lines}")
    return site


def python(args: list[str], site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=600, env=env, cwd=REPOSITORY
    )


def run_method(name: str, site: Path, output: Path) -> tuple[dict, dict]:
    """`lt-bench run` of the plugin method `name` for one epoch: its record and final checkpoint."""
    command = ["-m", "lt_bench.cli", "run", "--method", name, "--dataset", "digits_lt", "--epochs", "1",
               "--batch-size", "16", "--threads", "1", "--output", str(output)]  # fmt: skip
    result = python(command, site)
    assert result.returncode == 0, result.stderr
    (record_file,) = (output / "records").glob(f"*-{name}-*.json")
    (checkpoint,) = output.rglob("checkpoint.pt")
    return json.loads(record_file.read_text()), torch.load(checkpoint, weights_only=False)


def test_a_plugin_mixes_batches_groups_weight_decay_and_constrains_weights_after_each_step(site, tmp_path):
    record, checkpoint = run_method("demo_mixing", site, tmp_path)
    assert record["status"] == "finished" and record["method"] == "demo_mixing"
    steps = TRAINING_IMAGES // record["config"]["batch_size"]
    tally = checkpoint["method"]["tally"]
    # Mixing: about half the steps mixed in a batch from the plugin's own sampler (the rarest class
    # only) and trained on the plugin's mixed loss.
    assert 0 < tally["mixed_batches"] == tally["mixed_losses"] < steps
    assert len(tally["second_classes"]) == 1
    # Parameter groups: the biases undecayed, the rest at twice the recipe's decay.
    decays = [group["weight_decay"] for group in checkpoint["optimizer"]["param_groups"]]
    assert decays == [0.0, pytest.approx(2 * record["config"]["weight_decay"])]
    # Step end: every classifier row within the max norm ½, the constraint active on the final weights
    # (nn.Linear's initial rows are longer than ½, so without the projection they would exceed it).
    row_norms = checkpoint["model"]["head.weight"].norm(dim=1)
    assert row_norms.max().item() == pytest.approx(0.5, abs=1e-6)


def test_a_plugin_trains_on_two_views_and_sees_their_features(site, tmp_path):
    record, checkpoint = run_method("demo_two_views", site, tmp_path)
    assert record["status"] == "finished"
    tally = checkpoint["method"]["tally"]
    assert tally["views_per_image"] == 2.0  # logits and features of both views reached the loss
    assert tally["steps_with_different_views"] > 0  # each view drew its own augmentation


def test_the_hook_plugins_pass_the_conformance_suite(site):
    suite = REPOSITORY / "tests" / "test_conformance.py"
    result = python(
        ["-m", "pytest", "-o", "addopts=", "-v", "-p", "no:cacheprovider", str(suite), "-k", "demo_"], site
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tests = suite.read_text().count("\ndef test_")
    for name in ENTRY_POINTS:
        passed = [line for line in result.stdout.splitlines() if f"[{name}] PASSED" in line]
        assert len(passed) == tests >= 3, result.stdout
