"""Decoupling: τ-norm and LWS math by hand, cRT/LWS preparation, and real second stages on digits."""

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from lt_bench.checkpoint import read_checkpoint
from lt_bench.config import resolve_config
from lt_bench.method import MethodContext, SecondStage
from lt_bench.methods.decoupling import (
    TAU_GRID,
    ClassifierRetraining,
    LearnableWeightScaling,
    ScaledClassifier,
    TauNormalisation,
    tau_normalize,
)
from lt_bench.runner import RunPaths, run

WEIGHT = torch.tensor([[3.0, 4.0], [0.0, 2.0]])  # row norms 5 and 2


def test_tau_normalize_divides_each_row_by_its_norm_to_the_power_tau():
    assert tau_normalize(WEIGHT, 1.0).tolist() == [pytest.approx([0.6, 0.8]), pytest.approx([0.0, 1.0])]
    assert torch.equal(tau_normalize(WEIGHT, 0.0), WEIGHT)
    half = tau_normalize(WEIGHT, 0.5).tolist()  # [3, 4]/√5 and [0, 2]/√2
    assert half == [pytest.approx([3 / math.sqrt(5), 4 / math.sqrt(5)]), pytest.approx([0.0, math.sqrt(2)])]
    assert tau_normalize(torch.zeros(1, 2), 1.0).tolist() == [[0.0, 0.0]]  # no 0/0


def context(epochs=30, counts=(90, 10)):
    return MethodContext("digits_lt", len(counts), counts, 2, epochs, 1, 0.1)


def test_tau_norm_drops_the_bias_and_searches_zero_to_two_in_tenths():
    method = TauNormalisation(context())
    assert method.test_time_knobs() == {"tau": TAU_GRID}
    assert len(TAU_GRID) == 21 and TAU_GRID[0] == 0.0 and TAU_GRID[10] == 1.0 and TAU_GRID[-1] == 2.0
    head = nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(WEIGHT)
        head.bias.copy_(torch.tensor([10.0, -10.0]))
    # x = [1, 1], τ = 1: rows [0.6, 0.8] and [0, 1] → [1.4, 1.0]; the bias ±10 is not added
    logits = method.inference_logits(head, torch.tensor([[1.0, 1.0]]), tau=1.0)
    assert logits.tolist()[0] == pytest.approx([1.4, 1.0])


def test_lws_scales_logits_and_bias_per_class():
    classifier = nn.Linear(2, 2)
    with torch.no_grad():
        classifier.weight.copy_(torch.eye(2))
        classifier.bias.copy_(torch.tensor([1.0, -1.0]))
    head = ScaledClassifier(classifier)
    assert head.scales.tolist() == [1.0, 1.0]
    with torch.no_grad():
        head.scales.copy_(torch.tensor([2.0, 3.0]))
    # x = [1, 2]: W·x + b = [2, 1] → ⊙ [2, 3] = [4, 3]
    assert head(torch.tensor([[1.0, 2.0]])).tolist()[0] == pytest.approx([4.0, 3.0])


def test_second_stages_declare_the_official_schedules():
    # config/ImageNet_LT/cls_crt.yaml, cls_lws.yaml: 10 / 5 epochs, batch 512, lr 0.2, wd 5e-4, cosine
    assert ClassifierRetraining.second_stage == SecondStage(10, 0.2, 512, 5e-4, "cosine")
    assert LearnableWeightScaling.second_stage == SecondStage(5, 0.2, 512, 5e-4, "cosine")
    assert TauNormalisation.second_stage is None  # trains nothing
    assert {m.first_stage for m in (ClassifierRetraining, LearnableWeightScaling, TauNormalisation)} == {"ce"}


def test_crt_and_lws_sample_classes_equally():
    labels = torch.tensor([0] * 90 + [1] * 10)
    for method in (ClassifierRetraining(context()), LearnableWeightScaling(context())):
        draws = torch.cat([method.sample_order(labels, torch.Generator().manual_seed(s)) for s in range(10)])
        share_of_tail = (labels[draws] == 1).double().mean().item()
        assert 0.45 < share_of_tail < 0.55  # 10 % of the images, half of the draws


def test_under_the_paper_protocol_crt_and_lws_visit_classes_in_turn_four_images_at_a_time():
    labels = torch.tensor([0] * 90 + [1] * 10)
    paper = replace(context(), protocol="paper")
    for method in (ClassifierRetraining(paper), LearnableWeightScaling(paper)):
        order = method.sample_order(labels, torch.Generator().manual_seed(0))
        visits = labels[order].view(-1, 4)  # 100 draws = 25 visits of 4 images of one class
        assert (visits == visits[:, :1]).all()
        assert set(visits[:, 0].tolist()) == {0, 1}
        assert abs((visits[:, 0] == 1).sum().item() - 12.5) <= 0.5  # the two classes alternate per pass


def toy_model() -> nn.Module:
    model = nn.Module()
    model.backbone = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    model.head = nn.Linear(2, 2)
    return model


def test_crt_freezes_the_backbone_and_replaces_the_classifier():
    model = toy_model()
    old_head = model.head
    ClassifierRetraining(context()).prepare_second_stage(model)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert model.head is not old_head and isinstance(model.head, nn.Linear)
    assert all(p.requires_grad for p in model.head.parameters())


def test_lws_freezes_everything_but_the_scales():
    model = toy_model()
    old_head = model.head
    LearnableWeightScaling(context()).prepare_second_stage(model)
    assert model.head.classifier is old_head
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["head.scales"]


@pytest.fixture(scope="module")
def second_stages(tmp_path_factory) -> dict[str, dict]:
    """τ-norm first (it trains the CE stage), then the other second stages reusing that CE run."""
    output = tmp_path_factory.mktemp("decoupling")
    records = {"tau_norm": run(resolve_config("tau_norm", "digits_lt", epochs=2, output=str(output)))}
    ce_config = resolve_config("ce", "digits_lt", epochs=2, output=str(output))
    ce_checkpoint = RunPaths.of(ce_config).checkpoint
    written = ce_checkpoint.stat().st_mtime_ns
    for name in ("crt", "lws", "logit_adjustment_posthoc"):
        records[name] = run(resolve_config(name, "digits_lt", epochs=2, output=str(output)))
    assert ce_checkpoint.stat().st_mtime_ns == written  # the CE run was not trained again
    return {"records": records, "ce_config": ce_config, "output": output}


def test_second_stages_reuse_one_ce_run_and_say_so(second_stages):
    records, ce_config = second_stages["records"], second_stages["ce_config"]
    assert records["tau_norm"]["first_stage"] == {"run_id": ce_config.run_id, "reused": False}
    for name in ("crt", "lws", "logit_adjustment_posthoc"):
        assert records[name]["first_stage"] == {"run_id": ce_config.run_id, "reused": True}


def _checkpoint(config) -> dict[str, torch.Tensor]:
    return read_checkpoint(RunPaths.of(config).checkpoint)["model"]


def test_crt_keeps_the_ce_backbone_weights_updates_batchnorm_statistics_and_retrains_the_head(
    second_stages,
):
    ce = _checkpoint(second_stages["ce_config"])
    crt = _checkpoint(second_stages["ce_config"].replace(method="crt"))
    backbone = [k for k in ce if k.startswith("backbone.") and "num_batches_tracked" not in k]
    statistics = [k for k in backbone if k.endswith(("running_mean", "running_var"))]
    for key in set(backbone) - set(statistics):
        assert torch.equal(ce[key], crt[key]), key
    assert any(not torch.equal(ce[k], crt[k]) for k in statistics)  # BatchNorm stayed in train mode
    assert not torch.allclose(ce["head.weight"], crt["head.weight"])


def test_lws_keeps_the_ce_classifier_and_learns_scales(second_stages):
    ce = _checkpoint(second_stages["ce_config"])
    lws = _checkpoint(second_stages["ce_config"].replace(method="lws"))
    assert torch.equal(ce["head.weight"], lws["head.classifier.weight"])
    assert torch.equal(ce["head.bias"], lws["head.classifier.bias"])
    assert not torch.equal(lws["head.scales"], torch.ones(10))


def test_zero_epoch_stages_select_tau_on_validation(second_stages):
    for name, grid in (("tau_norm", list(TAU_GRID)), ("logit_adjustment_posthoc", None)):
        knobs = second_stages["records"][name]["knobs"]
        searched = knobs["validation"]
        if grid is not None:
            assert knobs["candidates"]["tau"] == grid
        assert len(searched) == len(knobs["candidates"]["tau"])
        best = max(entry["balanced_accuracy"] for entry in searched)
        chosen = next(entry for entry in searched if entry["knobs"] == knobs["selected"])
        assert chosen["balanced_accuracy"] == best
        folder = Path(second_stages["output"]) / "runs" / second_stages["records"][name]["run_id"]
        assert not (folder / "checkpoint.pt").exists()  # nothing was trained
