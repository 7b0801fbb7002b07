"""An installed plugin (entry point, outside the repository) using the multi-expert hook (i) and the
test-time adaptation hook (j): it runs through the CLI, adapts per shifted test set, and passes the
conformance suite."""

import json
from pathlib import Path

import pytest
from test_plugin_entry_point import REPOSITORY, _install, python

from lt_bench.test_shift import SHIFTS

EXPERTS_PLUGIN = '''
"""Two experts mixed by view agreement: a third-party lt-bench method on hooks (i) and (j)."""

import torch
import torch.nn.functional as F
from torch import nn

from lt_bench.experts import ExpertHeads
from lt_bench.method import Method


class TwoExperts(Method):
    """Two linear experts, each on cross-entropy; on each test set, the first expert's share is the
    fraction of images whose two augmented views it labels alike."""

    description = "two experts mixed by view agreement (demo plugin)"
    adapts_at_test = True

    def build_head(self):
        features, classes = self.context.feature_dim, self.context.num_classes
        return ExpertHeads([nn.Linear(features, classes), nn.Linear(features, classes)])

    def loss(self, logits, targets):
        return sum(F.cross_entropy(expert, targets) for expert in logits.unbind(dim=1))

    def combine_experts(self, head_output):
        return head_output.mean(dim=1)

    def adapt_to_test(self, head, view, other_view, generator):
        with torch.no_grad():
            alike = head(view)[:, 0].argmax(1) == head(other_view)[:, 0].argmax(1)
        return {"first_share": alike.double().mean().item()}

    def inference_logits(self, head, features, first_share=0.5):
        logits = head(features)
        return first_share * logits[:, 0] + (1 - first_share) * logits[:, 1]
'''


@pytest.fixture(scope="module")
def experts_plugin_path(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("experts-site")
    _install(
        site,
        "ltb-two-experts",
        {"ltb_two_experts": EXPERTS_PLUGIN},
        {"two_experts": "ltb_two_experts:TwoExperts"},
    )
    return site


def test_plugin_with_experts_adapts_per_shifted_test_set_through_the_cli(experts_plugin_path, tmp_path):
    output = tmp_path / "results"
    ran = python(["-m", "lt_bench.cli", "run", "--method", "two_experts", "--dataset", "digits_lt",
                  "--epochs", "1", "--output", str(output)], experts_plugin_path)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    (record_file,) = (output / "records").glob("*.json")
    record = json.loads(record_file.read_text())
    assert record["status"] == "finished" and record["knobs"]["selected"] == {}
    adaptation = record["test_adaptation"]
    assert set(adaptation["shifts"]) == {shift.name for shift in SHIFTS}
    assert all(0.0 <= entry["knobs"]["first_share"] <= 1.0 for entry in adaptation["shifts"].values())

    table = python(["-m", "lt_bench.cli", "leaderboard", "--test-shift", "--output", str(output)],
                   experts_plugin_path)  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "| two_experts " in (output / "leaderboard-test-shift.md").read_text()


def test_plugin_with_experts_passes_the_conformance_suite(experts_plugin_path):
    result = python(["-m", "pytest", "-o", "addopts=", "-v", "-p", "no:cacheprovider",
                     str(REPOSITORY / "tests" / "test_conformance.py"), "-k", "two_experts"],
                    experts_plugin_path)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if "[two_experts] PASSED" in line]
    assert len(passed) == (REPOSITORY / "tests" / "test_conformance.py").read_text().count("\ndef test_")
