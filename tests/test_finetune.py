"""The foundation-model track offline: fine-tuning modes, LoRA / AdaptFormer adapters, LIFT, pretraining.

A tiny ViT (8×8 digits, 2×2 patches, width 16, 2 blocks) registered in timm stands in for a
pretrained model; a state dict saved from it stands in for published weights (`--pretrained-file`).
A second one's pretrained config asks for 16×16 images and CLIP's mean and std: the input is fitted.
"""

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from timm.models import register_model
from timm.models.vision_transformer import VisionTransformer

from lt_bench.backbones import create_backbone
from lt_bench.checkpoint import read_checkpoint
from lt_bench.config import resolve_config
from lt_bench.data.base import LongTailedData, TensorSplit
from lt_bench.data.files import FileSplit
from lt_bench.data.split_lists import Origins
from lt_bench.errors import UserError
from lt_bench.finetune import prepare_backbone
from lt_bench.leaderboard import leaderboard_markdown
from lt_bench.peft import lift_rank
from lt_bench.pretrained_input import ModelInput, fit_input, pretrained_input
from lt_bench.records import iter_records, record_path
from lt_bench.runner import RunPaths, run
from tests.test_data_cifar import write_cifar10

WIDTH, DEPTH, CLASSES = 16, 2, 10
RESULTS = Path(__file__).resolve().parents[1] / "results"


@register_model
def finetune_test_vit(pretrained=False, num_classes=0, in_chans=1, **kwargs):
    return VisionTransformer(
        img_size=8, patch_size=2, in_chans=in_chans, num_classes=num_classes, embed_dim=WIDTH,
        depth=DEPTH, num_heads=2, mlp_ratio=2.0,
    )  # fmt: skip


CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@register_model
def finetune_test_clip_vit(pretrained=False, num_classes=0, in_chans=1, **kwargs):
    """A tiny ViT whose pretrained config, like a CLIP ViT's, asks for larger images and CLIP's mean
    and std (16×16, bicubic; the digits are 8×8)."""
    model = VisionTransformer(
        img_size=16, patch_size=4, in_chans=in_chans, num_classes=num_classes, embed_dim=WIDTH,
        depth=DEPTH, num_heads=2, mlp_ratio=2.0,
    )  # fmt: skip
    model.pretrained_cfg = {
        "input_size": (3, 16, 16), "mean": CLIP_MEAN, "std": CLIP_STD, "interpolation": "bicubic",
        "crop_pct": 0.9,
    }  # fmt: skip
    return model


def _saved_weights(tmp_path_factory, backbone: str, seed: int) -> Path:
    """A saved state dict of a freshly drawn `backbone`: the stand-in for published pretrained weights."""
    torch.manual_seed(seed)
    path = tmp_path_factory.mktemp("weights") / f"{backbone}.pth"
    torch.save(create_backbone(backbone, 1).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return _saved_weights(tmp_path_factory, "finetune_test_vit", seed=1)


def _backbone(weights: Path, finetune: str, peft: str = "adaptformer", rank: int | None = 4):
    torch.manual_seed(0)
    backbone = create_backbone("finetune_test_vit", 1, pretrained_file=weights)
    description = prepare_backbone(
        backbone, finetune=finetune, peft=peft, peft_rank=rank, num_classes=CLASSES, name="finetune_test_vit"
    )
    return backbone, description


def _trainable(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


@pytest.mark.parametrize(
    "peft, per_block",
    [
        ("lora", 2 * (WIDTH * 4 + 4 * WIDTH)),  # A (16×4) and B (4×16) for the query and for the value
        ("adaptformer", 2 * WIDTH + (WIDTH * 4 + 4) + (4 * WIDTH + WIDTH) + 1),  # LayerNorm, down, up, scale
    ],
)
def test_adapters_are_the_only_trainable_backbone_parameters_and_start_as_the_identity(
    weights, peft, per_block
):
    images = torch.randn(3, 1, 8, 8)
    plain = create_backbone("finetune_test_vit", 1, pretrained_file=weights).eval()
    backbone, description = _backbone(weights, "peft", peft)
    assert description == {
        "mode": "peft",
        "adapter": peft,
        "rank": 4,
        "adapter_parameters": DEPTH * per_block,
    }
    assert _trainable(backbone) == DEPTH * per_block
    frozen = sum(p.numel() for p in backbone.parameters() if not p.requires_grad)
    assert frozen == sum(p.numel() for p in plain.parameters())  # every pretrained weight is frozen
    with torch.no_grad():  # zero-initialised up projections: the pretrained features, unchanged
        torch.testing.assert_close(backbone.eval()(images), plain(images))


def test_linear_freezes_the_whole_backbone_and_full_freezes_nothing(weights):
    linear, description = _backbone(weights, "linear")
    assert _trainable(linear) == 0 and description["mode"] == "linear"
    full, description = _backbone(weights, "full")
    assert _trainable(full) == sum(p.numel() for p in full.parameters()) and description == {"mode": "full"}


def test_default_rank_is_lifts_rule():
    assert lift_rank(100, 12) == 4  # CIFAR-100 on ViT-B/16: 2^floor(log2(100 / 24))
    assert lift_rank(1000, 12) == 32
    assert lift_rank(10, 12) == 1


def test_peft_on_a_backbone_without_vit_blocks_is_a_one_line_error():
    with pytest.raises(UserError, match="--finetune full or linear") as error:
        prepare_backbone(
            create_backbone("lt_small_cnn", 1), finetune="peft", peft="lora", peft_rank=None,
            num_classes=CLASSES, name="lt_small_cnn",
        )  # fmt: skip
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "option, message",
    [
        ({"finetune": "partial"}, "--finetune must be one of full, linear, peft"),
        ({"finetune": "peft", "peft": "vpt"}, "--peft must be one of lora, adaptformer"),
        ({"finetune": "peft", "peft_rank": 0}, "--peft-rank must be a whole number >= 1"),
    ],
)
def test_bad_finetune_options_are_one_line_errors(option, message):
    with pytest.raises(UserError, match=message):
        resolve_config("ce", "digits_lt", **option)


def test_full_fine_tuning_keeps_the_run_ids_of_runs_made_before_the_modes():
    plain = resolve_config("ce", "digits_lt", epochs=1)
    assert "finetune" not in plain.identity() and "peft_rank" not in plain.identity()
    assert resolve_config("ce", "digits_lt", epochs=1, finetune="full", peft="lora").run_id == plain.run_id
    linear = resolve_config("ce", "digits_lt", epochs=1, finetune="linear")
    assert linear.run_id != plain.run_id
    assert resolve_config("ce", "digits_lt", epochs=1, finetune="linear", peft_rank=8).run_id == linear.run_id
    lora = resolve_config("ce", "digits_lt", epochs=1, finetune="peft", peft="lora")
    assert lora.run_id not in (plain.run_id, linear.run_id)
    assert resolve_config("ce", "digits_lt", epochs=1, finetune="peft", peft_rank=2).run_id != lora.run_id


def _config(method: str, weights: Path, output: Path, **options):
    return resolve_config(
        method, "digits_lt", backbone="finetune_test_vit", pretrained_file=str(weights), output=str(output),
        device="cpu", **options,
    )  # fmt: skip


def test_lift_with_peft_trains_only_the_adapters_and_the_head_and_resumes_exactly(weights, tmp_path):
    config = _config("lift", weights, tmp_path, epochs=2, finetune="peft", peft="adaptformer", peft_rank=4)
    record = run(config)
    assert record["status"] == "finished"
    assert record["pretraining"] == {"weights": "file", "digest": config.pretrained_digest}
    assert record["finetuning"]["adapter_parameters"] == DEPTH * 181
    assert record["head_init"] == "class means"
    assert "input" not in record  # a model without a pretrained config keeps the dataset's input
    head = CLASSES * WIDTH  # LIFT's cosine head: no bias
    assert record["cost"]["trainable_parameters"] == DEPTH * 181 + head

    trained = read_checkpoint(RunPaths.of(config).checkpoint, torch.device("cpu"))["model"]
    pretrained = torch.load(weights, weights_only=True)
    moved = {key for key, value in trained.items() if key.startswith("backbone.")}
    renamed = {  # AdaptFormer's branch holds the block's norm2 and mlp
        key.replace("norm2.", "mlp.norm.").replace("mlp.fc", "mlp.mlp.fc"): value
        for key, value in pretrained.items()
    }
    for key, value in renamed.items():
        torch.testing.assert_close(trained[f"backbone.{key}"], value, rtol=0, atol=0)
    adapters = [key for key in moved if ".adapter." in key]
    assert len(adapters) == DEPTH * 7 and any(
        trained[key].abs().sum() > 0 for key in adapters if ".up." in key
    )

    # Resume from the first epoch's checkpoint: the second epoch repeats exactly.
    paths = RunPaths.of(config)
    shutil.copy(paths.checkpoint.with_name("checkpoint.pt.previous"), paths.checkpoint)
    record_path(config.output, config.run_id).unlink()
    resumed = run(config)
    assert resumed["metrics"] == record["metrics"]
    for key, value in read_checkpoint(paths.checkpoint, torch.device("cpu"))["model"].items():
        torch.testing.assert_close(value, trained[key], rtol=0, atol=0)


def test_linear_probe_trains_the_head_on_cached_features_and_resumes_exactly(weights, tmp_path):
    config = _config("ce", weights, tmp_path, epochs=2, finetune="linear")
    record = run(config)
    assert record["finetuning"]["mode"] == "linear"
    assert record["cost"]["trainable_parameters"] == CLASSES * WIDTH + CLASSES
    paths = RunPaths.of(config)
    trained = read_checkpoint(paths.checkpoint, torch.device("cpu"))["model"]
    for key, value in torch.load(weights, weights_only=True).items():
        torch.testing.assert_close(trained[f"backbone.{key}"], value, rtol=0, atol=0)

    shutil.copy(paths.checkpoint.with_name("checkpoint.pt.previous"), paths.checkpoint)
    record_path(config.output, config.run_id).unlink()
    resumed = run(config)
    assert resumed["metrics"] == record["metrics"]
    for key, value in read_checkpoint(paths.checkpoint, torch.device("cpu"))["model"].items():
        torch.testing.assert_close(value, trained[key], rtol=0, atol=0)


def test_leaderboard_shows_pretraining_only_when_a_record_is_pretrained():
    committed = list(iter_records(RESULTS))
    if not committed:
        pytest.skip("no committed run records")
    assert "Pretraining" not in leaderboard_markdown(committed)
    clip = copy.deepcopy(committed[0])
    clip["run_id"] += "-clip"
    clip["backbone"] = clip["config"]["backbone"] = "vit_base_patch16_clip_224"
    clip["config"]["pretrained"] = True
    clip["pretraining"] = {
        "weights": "timm",
        "tag": "openai",
        "source": "timm/vit_base_patch16_clip_224.openai",
    }
    page = leaderboard_markdown([*committed, clip])
    header = next(line for line in page.splitlines() if line.startswith("| Method"))
    assert [cell.strip() for cell in header.split("|")][1:5] == [
        "Method",
        "Backbone",
        "Epochs",
        "Pretraining",
    ]
    assert "| openai (external data) " in page and "| none " in page
    assert "openai = CLIP's 400M image-text pairs" in page


@pytest.mark.parametrize(
    "declared, shown",
    [
        (None, "file 0123abcd"),
        ("same", "file 0123abcd (same data)"),
        ("external", "file 0123abcd (external data)"),
    ],
)
def test_a_weights_file_shows_the_pretraining_data_its_run_declared(declared, shown):
    committed = list(iter_records(RESULTS))
    if not committed:
        pytest.skip("no committed run records")
    stage_one = copy.deepcopy(committed[0])
    stage_one["run_id"] += "-from-file"
    stage_one["config"]["pretrained_digest"] = "0123abcd"
    stage_one["config"]["pretraining_data"] = declared
    stage_one["pretraining"] = {
        "weights": "file",
        "digest": "0123abcd",
        **({"data": declared} if declared else {}),
    }
    page = leaderboard_markdown([*committed, stage_one])
    header = next(line for line in page.splitlines() if line.startswith("| Method"))
    assert f"| {shown} |" in page and "pretraining data" not in header  # in its column, not another


def test_pretraining_data_is_declared_for_a_weights_file_only(weights):
    with pytest.raises(UserError, match="pass it with --pretrained-file"):
        resolve_config("ce", "digits_lt", pretraining_data="same")
    with pytest.raises(UserError, match="--pretraining-data must be one of same, external"):
        resolve_config("ce", "digits_lt", pretrained_file=str(weights), pretraining_data="imagenet")
    plain = resolve_config("ce", "digits_lt", pretrained_file=str(weights))
    assert "pretraining_data" not in plain.identity()  # undeclared: the run ids from before stay
    assert resolve_config(
        "ce", "digits_lt", pretrained_file=str(weights), pretraining_data="same"
    ).run_id != (plain.run_id)


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory) -> Path:
    return _saved_weights(tmp_path_factory, "finetune_test_clip_vit", seed=2)


def test_the_input_comes_from_the_pretrained_config_of_a_pretrained_run_only():
    backbone = create_backbone("finetune_test_clip_vit", 3)
    assert pretrained_input(backbone, 3, starts_pretrained=True) == ModelInput(
        size=(16, 16), mean=CLIP_MEAN, std=CLIP_STD, interpolation="bicubic", crop_pct=0.9
    )
    grey = pretrained_input(backbone, 1, starts_pretrained=True)
    assert grey.mean == pytest.approx((0.449164,), abs=1e-6)  # (0.48145 + 0.45783 + 0.40821) / 3
    assert grey.std == pytest.approx((0.268570,), abs=1e-6)  # (0.26863 + 0.26130 + 0.27578) / 3
    assert pretrained_input(backbone, 3, starts_pretrained=False) is None  # from scratch: as before
    assert pretrained_input(create_backbone("finetune_test_vit", 1), 1, starts_pretrained=True) is None


def test_in_memory_images_are_resized_after_augmentation_then_normalised():
    images = torch.full((2, 1, 4, 4), 51, dtype=torch.uint8)  # 51 / 255 = 0.2 everywhere
    split = TensorSplit(images, torch.tensor([0, 1]), (0.5,), (0.25,), resize=(9, 9), interpolation="bicubic")
    batch, _ = next(iter(split.batches([(0, torch.tensor([0, 1]))], train=True, device=torch.device("cpu"))))
    assert batch.shape == (2, 1, 9, 9)
    torch.testing.assert_close(batch, torch.full((2, 1, 9, 9), -1.2))  # (0.2 − 0.5) / 0.25


def test_lift_on_a_pretrained_vit_whose_config_asks_for_another_input_size_trains_end_to_end(
    clip_weights, tmp_path
):
    config = resolve_config(
        "lift", "digits_lt", backbone="finetune_test_clip_vit", pretrained_file=str(clip_weights),
        output=str(tmp_path), device="cpu", epochs=1, finetune="peft",
    )  # fmt: skip
    record = run(config)
    assert record["status"] == "finished"
    assert json.loads(json.dumps(record["input"])) == {
        "source": "timm pretrained config",
        "size": [16, 16],
        "mean": [pytest.approx(0.449164, abs=1e-6)],
        "std": [pytest.approx(0.268570, abs=1e-6)],
        "interpolation": "bicubic",
        "crop_pct": 0.9,
    }


def test_the_lift_command_of_the_readme_offline_stops_with_one_line_naming_pretrained_file(tmp_path):
    config = resolve_config(
        "lift", "digits_lt", backbone="vit_base_patch16_clip_224.openai", pretrained=True,
        finetune="peft", output=str(tmp_path), device="cpu", epochs=1,
    )  # fmt: skip
    with pytest.raises(UserError, match="pass --pretrained-file PATH instead") as error:
        run(config)
    assert "\n" not in str(error.value)


def test_image_files_are_cropped_to_the_model_input_and_normalised_with_its_mean(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("RGB", (40, 30), (51, 51, 51)).save(path)  # 0.2 in every channel
    split = FileSplit([str(path)] * 2, torch.tensor([0, 1]), Origins(tmp_path / "list.txt"), None, None)
    data = LongTailedData("files", 2, split, split, split, [1, 1], in_chans=3)
    model_input = ModelInput(
        size=(16, 16), mean=(0.5, 0.4, 0.2), std=(0.25, 0.5, 0.1), interpolation="bilinear", crop_pct=0.9
    )
    fitted = fit_input(data, model_input)
    batches = [(0, torch.tensor([0, 1]))]
    for train in (True, False):
        images, _ = next(iter(fitted.test.batches(batches, train=train, device=torch.device("cpu"))))
        assert images.shape == (2, 3, 16, 16)
        expected = torch.tensor([(0.2 - 0.5) / 0.25, (0.2 - 0.4) / 0.5, (0.2 - 0.2) / 0.1])  # −1.2, −0.4, 0
        torch.testing.assert_close(images, expected.view(1, 3, 1, 1).expand(2, 3, 16, 16), atol=1e-6, rtol=0)


def test_lift_on_cifar_lt_takes_the_rgb_images_at_the_models_size_and_clip_normalisation(tmp_path):
    write_cifar10(tmp_path / "data")
    torch.manual_seed(3)
    weights = tmp_path / "tiny_clip_vit_rgb.pth"
    torch.save(create_backbone("finetune_test_clip_vit", 3).state_dict(), weights)
    config = resolve_config(
        "lift", "cifar10_lt", data_root=str(tmp_path / "data"), imbalance_ratio=10,
        backbone="finetune_test_clip_vit", pretrained_file=str(weights), finetune="peft", epochs=1,
        milestones=(), batch_size=32, test_crops=5, pretraining_data="external", output=str(tmp_path / "out"),
        device="cpu",
    )  # fmt: skip
    record = run(config)
    assert record["status"] == "finished" and record["config"]["test_crops"] == 5
    assert record["input"]["size"] == (16, 16)  # the 32×32 images resized to the model's input
    assert record["input"]["mean"] == CLIP_MEAN and record["input"]["std"] == CLIP_STD
    assert record["finetuning"]["mode"] == "peft"
    assert record["pretraining"] == {
        "weights": "file",
        "digest": config.pretrained_digest,
        "data": "external",
    }
