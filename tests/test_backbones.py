"""Backbones: BBN's two-branch ResNet-32, timm's zero-initialised last BatchNorm, pretrained weights."""

from __future__ import annotations

import time
from pathlib import Path

import huggingface_hub.constants
import pytest
import safetensors.torch
import timm
import torch
from timm.models.resnet import BasicBlock, Bottleneck

from lt_bench.backbones import create_backbone, file_digest
from lt_bench.errors import UserError


def _block_weights(channels_in: int, channels_out: int) -> int:
    """A basic block: two 3×3 convs without bias and two BatchNorms (weight and bias each)."""
    return 9 * channels_in * channels_out + 9 * channels_out * channels_out + 2 * 2 * channels_out


# Stem 3×3 conv 3→16 + BN; stages of 5, 5 and 4 blocks (16, 32, 64 channels; option-A shortcuts have no
# weights); then the two parallel 64-channel blocks of BBN.
BBN_PARAMETERS = (
    (9 * 3 * 16 + 2 * 16)
    + 5 * _block_weights(16, 16)
    + _block_weights(16, 32)
    + 4 * _block_weights(32, 32)
    + _block_weights(32, 64)
    + 3 * _block_weights(64, 64)
    + 2 * _block_weights(64, 64)
)


def test_resnet32_bbn_has_the_hand_counted_parameters_and_128_features() -> None:
    assert BBN_PARAMETERS == 537_488
    model = timm.create_model("resnet32_bbn", num_classes=0)
    assert sum(p.numel() for p in model.parameters()) == BBN_PARAMETERS
    # Five blocks in the last stage instead of 4 + 2 parallel ones: He et al.'s 0.46M ResNet-32.
    resnet32 = timm.create_model("resnet32_cifar", num_classes=0)
    assert sum(p.numel() for p in resnet32.parameters()) == BBN_PARAMETERS - _block_weights(64, 64) == 463_504
    assert model.num_features == 128
    assert model(torch.randn(3, 3, 32, 32)).shape == (3, 128)
    with_head = timm.create_model("resnet32_bbn", num_classes=10)
    assert sum(p.numel() for p in with_head.parameters()) == BBN_PARAMETERS + 128 * 10 + 10


def test_resnet32_bbn_features_are_the_two_branches_pooled_side_by_side() -> None:
    torch.manual_seed(0)
    model = create_backbone("resnet32_bbn", in_chans=3).eval()
    parallel = model.body[-1]
    outputs: dict[str, torch.Tensor] = {}
    for branch in ("conventional", "rebalancing"):
        module = getattr(parallel, branch)
        module.register_forward_hook(
            lambda _m, _i, output, branch=branch: outputs.__setitem__(branch, output)
        )
    with torch.no_grad():
        features = model(torch.randn(2, 3, 32, 32))
    assert outputs["conventional"].shape == (2, 64, 8, 8)
    assert torch.allclose(features[:, :64], outputs["conventional"].mean(dim=(2, 3)))
    assert torch.allclose(features[:, 64:], outputs["rebalancing"].mean(dim=(2, 3)))
    assert not torch.allclose(features[:, :64], features[:, 64:])  # two blocks with their own weights


def _last_batch_norms(model: torch.nn.Module) -> list[torch.Tensor]:
    """The weight of the last BatchNorm of each residual block of a timm ResNet / ResNeXt."""
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    return [(block.bn3 if isinstance(block, Bottleneck) else block.bn2).weight for block in blocks]


@pytest.mark.parametrize(("name", "blocks"), [("resnext50_32x4d", 16), ("resnet10t", 4)])
def test_zero_init_last_sets_each_blocks_last_batch_norm_to_zero_or_one(name: str, blocks: int) -> None:
    zeroed = _last_batch_norms(create_backbone(name, 3))
    assert len(zeroed) == blocks and all(torch.all(weight == 0) for weight in zeroed)
    at_one = _last_batch_norms(create_backbone(name, 3, zero_init_last=False))
    assert len(at_one) == blocks and all(torch.all(weight == 1) for weight in at_one)


@pytest.mark.parametrize("name", ["mobilenetv3_small_050", "regnetz_005", "lt_small_cnn", "resnet32_bbn"])
def test_zero_init_last_leaves_models_without_the_option_alone(name: str) -> None:
    # mobilenetv3 has no such option; regnetz_005's entry point fixes it to False itself.
    states = []
    for zero_init_last in (True, False):
        torch.manual_seed(0)
        states.append(create_backbone(name, 3, zero_init_last=zero_init_last).state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][key], states[1][key]) for key in states[0])


def test_published_weights_offline_fail_fast_with_one_line_naming_the_file_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No network here; offline mode makes huggingface_hub fail at once instead of retrying for a minute.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    started = time.perf_counter()
    with pytest.raises(UserError, match="--pretrained-file PATH") as error:
        create_backbone("resnet10t", 3, pretrained=True)
    assert time.perf_counter() - started < 10
    assert "\n" not in str(error.value) and "resnet10t" in str(error.value)


@pytest.mark.parametrize("name", ["botnet50ts_256", "resnet32_bbn"])
def test_a_model_without_published_weights_says_so(name: str) -> None:
    with pytest.raises(UserError, match=f"no pretrained weights for backbone '{name}'"):
        create_backbone(name, 3, pretrained=True)


def test_published_and_file_weights_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="pass only one"):
        create_backbone("resnet10t", 3, pretrained=True, pretrained_file=tmp_path / "w.pth")


@pytest.mark.parametrize("layout", ["plain", "state_dict", "model", "module_prefix", "safetensors"])
def test_a_weights_file_loads_every_backbone_tensor_and_drops_the_classifier(
    tmp_path: Path, layout: str
) -> None:
    torch.manual_seed(1)
    source = timm.create_model("resnet10t", num_classes=5)  # its fc (5 classes) is left out
    state = source.state_dict()
    path = tmp_path / ("weights.safetensors" if layout == "safetensors" else "weights.pth")
    if layout == "safetensors":
        safetensors.torch.save_file(state, path)
    elif layout == "module_prefix":  # saved from DataParallel
        torch.save({f"module.{key}": value for key, value in state.items()}, path)
    elif layout == "plain":
        torch.save(state, path)
    else:
        torch.save({layout: state, "epoch": 90}, path)
    torch.manual_seed(2)
    model = create_backbone("resnet10t", 3, pretrained_file=path)
    loaded = model.state_dict()
    assert set(state) - set(loaded) == {"fc.weight", "fc.bias"}
    assert all(torch.equal(value, state[key]) for key, value in loaded.items())


def test_weights_of_another_architecture_are_one_line_naming_the_misfits(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), path)
    with pytest.raises(UserError) as error:
        create_backbone("resnet10t", 3, pretrained_file=path)
    message = str(error.value)
    assert "\n" not in message
    assert "does not fit backbone 'resnet10t'" in message
    # resnet10t's deep stem (conv1.0, conv1.1, ...) has no match in resnet18's single conv1
    assert "missing (conv1.0.weight" in message and "unexpected (conv1.weight" in message


def test_a_weights_file_for_other_input_channels_names_the_first_conv(tmp_path: Path) -> None:
    path = tmp_path / "rgb.pth"
    torch.save(timm.create_model("resnet32_bbn", num_classes=0).state_dict(), path)
    with pytest.raises(UserError, match=r"keys 1 of another shape \(body\.0\.weight\)$"):
        create_backbone("resnet32_bbn", 1, pretrained_file=path)


@pytest.mark.parametrize(
    ("filename", "contents", "complaint"),
    [
        ("truncated.pth", "truncate", "cannot read weights file"),
        ("garbage.safetensors", b"not a safetensors header" * 4, "cannot read weights file"),
        ("empty.pth", b"", "cannot read weights file"),
        ("tensor.pth", "tensor", "holds no state dict of tensors"),
        ("absent.pth", None, "does not exist"),
    ],
)
def test_an_unreadable_weights_file_is_one_line(
    tmp_path: Path, filename: str, contents: bytes | str | None, complaint: str
) -> None:
    path = tmp_path / filename
    if contents == "truncate":
        torch.save(timm.create_model("resnet10t", num_classes=0).state_dict(), path)
        path.write_bytes(path.read_bytes()[:5000])
    elif contents == "tensor":
        torch.save(torch.zeros(3), path)
    elif contents is not None:
        path.write_bytes(contents)
    with pytest.raises(UserError, match=complaint) as error:
        create_backbone("resnet10t", 3, pretrained_file=path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_file_digest_is_the_start_of_the_sha256(tmp_path: Path) -> None:
    path = tmp_path / "abc"
    path.write_bytes(b"abc")
    # SHA-256("abc") = ba7816bf 8f01cfea ... (FIPS 180-2, appendix B.1)
    assert file_digest(path) == "ba7816bf8f01"
