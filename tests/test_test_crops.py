"""Test-time crop ensembling (LIFT's `tte`): the crops match torchvision's FiveCrop / TenCrop of the
image enlarged by 24/224, the logits are averaged over them, and runs without it keep their ids."""

import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import functional as TF

from lt_bench.backbones import LongTailClassifier, create_backbone
from lt_bench.checkpoint import read_checkpoint
from lt_bench.config import resolve_config
from lt_bench.errors import UserError
from lt_bench.runner import RunPaths, load_data, run
from lt_bench.test_crops import average_views, crop_views


@pytest.mark.parametrize("crops, torchvision_crops", [(5, TF.five_crop), (10, TF.ten_crop)])
def test_crops_are_torchvisions_of_the_image_enlarged_from_224_to_248(crops, torchvision_crops):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 224, 224)
    enlarged = F.interpolate(images, size=(248, 248), mode="bilinear", align_corners=False)
    expected = torch.stack(torchvision_crops(enlarged, [224, 224]), dim=1).flatten(0, 1)
    torch.testing.assert_close(crop_views(images, crops), expected, rtol=0, atol=0)


def test_one_crop_is_the_image_itself():
    images = torch.rand(2, 1, 8, 8)
    assert crop_views(images, 1) is images


def test_logits_are_averaged_over_each_images_views():
    logits = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0], [2.0, 0.0]])  # image 0: rows 0-1, image 1: 2-3
    torch.testing.assert_close(average_views(logits, 2), torch.tensor([[2.0, 1.0], [1.0, 2.0]]))


def test_bad_crop_count_is_a_one_line_error():
    with pytest.raises(UserError, match="--test-crops must be one of 1, 5, 10, got 3"):
        resolve_config("ce", "digits_lt", test_crops=3)


def test_off_by_default_and_run_ids_unchanged():
    plain = resolve_config("ce", "digits_lt", epochs=1)
    assert plain.test_crops == 1 and "test_crops" not in plain.identity()
    assert resolve_config("ce", "digits_lt", epochs=1, test_crops=1).run_id == plain.run_id
    assert resolve_config("ce", "digits_lt", epochs=1, test_crops=5).run_id != plain.run_id


def test_a_run_with_five_crops_predicts_the_argmax_of_the_averaged_test_logits(tmp_path):
    config = resolve_config("ce", "digits_lt", epochs=1, test_crops=5, device="cpu", output=str(tmp_path))
    record = run(config)
    single = run(config.replace(test_crops=1))
    assert record["metrics"]["val"] == single["metrics"]["val"]  # same training; validation sees one view

    weights = read_checkpoint(RunPaths.of(config).checkpoint, torch.device("cpu"))["model"]
    model = LongTailClassifier(create_backbone("lt_small_cnn", 1), torch.nn.Linear(64, 10))
    model.load_state_dict(weights)
    model.eval()
    test = load_data(config).test
    images, _ = next(
        iter(test.batches([(0, torch.arange(len(test)))], train=False, device=torch.device("cpu")))
    )
    with torch.no_grad():
        _, logits = model(crop_views(images, 5))
    assert average_views(logits, 5).argmax(1).tolist() == record["test_predictions"]
    with torch.no_grad():
        assert model(images)[1].argmax(1).tolist() == single["test_predictions"]


def test_a_method_that_adapts_to_the_test_images_refuses_crops(tmp_path):
    config = resolve_config("sade", "digits_lt", epochs=1, test_crops=5, device="cpu", output=str(tmp_path))
    with pytest.raises(UserError, match="pass --test-crops 1") as error:
        run(config)
    assert "\n" not in str(error.value) and not list(tmp_path.rglob("*.json"))
