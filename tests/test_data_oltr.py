"""ImageNet-LT and Places-LT from OLTR-format lists over real JPEG files written here with PIL."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lt_bench.cli import main
from lt_bench.config import resolve_config
from lt_bench.data import DATASETS, DataOptions
from lt_bench.data.check import check_dataset
from lt_bench.data.files import _image_seed
from lt_bench.data.split_lists import fetch, git_blob_sha1
from lt_bench.errors import UnreadableImage, UserError
from lt_bench.records import read_record

CPU = torch.device("cpu")


def write_jpeg(path: Path, shade: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(shade).integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")


def write_imagenet_lt(root: Path, train_per_class: tuple[int, ...] = (5, 3, 1)) -> dict[str, list[str]]:
    """ILSVRC-style folders train/<wnid>/ and val/<wnid>/ with ImageNet_LT_{train,val,test}.txt."""
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for label, count in enumerate(train_per_class):
        wnid = f"n0000000{label}"
        for index in range(count + 2):  # the last two train images of each class form val
            split = "train" if index < count else "val"
            lines[split].append(f"train/{wnid}/{wnid}_{index}.JPEG {label}")
        lines["test"].append(f"val/{wnid}/ILSVRC2012_val_0000000{label}.JPEG {label}")
    for split, entries in lines.items():
        for number, line in enumerate(entries):
            write_jpeg(root / line.split()[0], shade=number + 100 * len(split))
        (root / f"ImageNet_LT_{split}.txt").write_text("".join(f"{line}\n" for line in entries))
    return lines


def test_git_blob_ids_match_git_hash_object() -> None:
    assert git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_imagenet_lt_loads_lists_and_decodes_jpegs(tmp_path: Path) -> None:
    write_imagenet_lt(tmp_path)
    data = DATASETS.get("imagenet_lt")().load(DataOptions(data_root=tmp_path, custom_lists=True))
    assert (len(data.train), len(data.val), len(data.test)) == (9, 6, 3)
    assert data.num_classes == 1000 and data.class_counts[:4] == [5, 3, 1, 0]
    batches = [(7, torch.tensor([0, 5, 8]))]
    ((train_images, train_labels),) = data.train.batches(batches, train=True, device=CPU)
    assert train_images.shape == (3, 3, 224, 224) and train_labels.tolist() == [0, 1, 2]
    ((again, _),) = data.train.batches(batches, train=True, device=CPU)
    assert torch.equal(train_images, again)  # crops are seeded by the batch seed
    ((other, _),) = data.train.batches([(8, torch.tensor([0, 5, 8]))], train=True, device=CPU)
    assert not torch.equal(train_images, other)
    ((test_images, test_labels),) = data.test.batches([(0, torch.arange(3))], train=False, device=CPU)
    assert test_images.shape == (3, 3, 224, 224) and test_labels.tolist() == [0, 1, 2]


def test_workers_give_the_same_batches_as_the_main_process(tmp_path: Path) -> None:
    write_imagenet_lt(tmp_path)
    source = DATASETS.get("imagenet_lt")()
    in_process = source.load(DataOptions(data_root=tmp_path, custom_lists=True)).train
    with_workers = source.load(DataOptions(data_root=tmp_path, num_workers=2, custom_lists=True)).train
    epochs = [[(1, torch.tensor([0, 1, 2])), (2, torch.tensor([3, 4]))], [(3, torch.tensor([8, 7, 6]))]]
    for batches in epochs:  # the second epoch reuses the persistent workers with new batches
        expected = list(in_process.batches(batches, train=True, device=CPU))
        got = list(with_workers.batches(batches, train=True, device=CPU))
        assert len(got) == len(expected) == len(batches)
        for (images, labels), (want_images, want_labels) in zip(got, expected, strict=True):
            assert torch.equal(images, want_images) and torch.equal(labels, want_labels)


def test_a_training_crop_is_drawn_from_its_image_seed(tmp_path: Path) -> None:
    write_imagenet_lt(tmp_path)
    train = DATASETS.get("imagenet_lt")().load(DataOptions(data_root=tmp_path, custom_lists=True)).train
    ((images, _),) = train.batches([(7, torch.tensor([4, 2]))], train=True, device=CPU)
    for position, index in enumerate((4, 2)):
        torch.manual_seed(_image_seed(7, position))  # the seed a resumed run derives again
        with Image.open(train.paths[index]) as image:
            expected = train.transforms[True](image.convert("RGB"))
        assert torch.equal(images[position], expected)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("train/n00000000/n00000000_0.JPEG 1000", r"ImageNet_LT_train.txt:2: label 1000 is outside 0..999"),
        ("train/n00000000/n00000000_0.JPEG", r"ImageNet_LT_train.txt:2: expected 'relative/path label'"),
        ("train/n00000000/missing.JPEG 0", r"missing.JPEG \(ImageNet_LT_train.txt line 2\) does not exist"),
    ],
)
def test_malformed_list_lines_are_named_by_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    lines = write_imagenet_lt(tmp_path)
    train = [lines["train"][0], line, *lines["train"][1:]]
    (tmp_path / "ImageNet_LT_train.txt").write_text("\n".join(train) + "\n")
    with pytest.raises(UserError, match=message):
        DATASETS.get("imagenet_lt")().load(DataOptions(data_root=tmp_path, custom_lists=True))


def test_missing_list_and_root_say_what_to_get(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--method", "causal_tde", "--dataset", "imagenet_lt"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "ImageNet_LT_train.txt" in error and "classifier-balancing" in error and "--download" in error
    with pytest.raises(
        UserError, match=r"ImageNet_LT_train.txt is missing: imagenet_lt needs --data-root DIR"
    ):
        DATASETS.get("imagenet_lt")().load(DataOptions(data_root=tmp_path, custom_lists=True))


def test_lists_that_are_not_the_published_ones_need_custom_lists(tmp_path: Path, capsys) -> None:
    write_imagenet_lt(tmp_path)
    published = (
        r"ImageNet_LT_train.txt is not the published train list \(git blob [0-9a-f]{40}, published a063f"
    )
    with pytest.raises(UserError, match=published):
        check_dataset("imagenet_lt", DataOptions(data_root=tmp_path))
    argv = ["run", "--method", "ce", "--dataset", "imagenet_lt", "--data-root", str(tmp_path),
            "--backbone", "lt_small_cnn", "--output", str(tmp_path / "results")]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and re.search(published, error)
    assert "pass --custom-lists to run on these lists as a named variant" in error
    assert not (tmp_path / "results").exists()


def test_custom_lists_are_named_by_a_digest_of_their_bytes(tmp_path: Path) -> None:
    lines = write_imagenet_lt(tmp_path)
    source = DATASETS.get("imagenet_lt")()
    digest = source.load(DataOptions(data_root=tmp_path, custom_lists=True)).lists_digest
    assert re.fullmatch(r"[0-9a-f]{12}", digest)
    assert source.load(DataOptions(data_root=tmp_path, custom_lists=True)).lists_digest == digest
    (tmp_path / "ImageNet_LT_val.txt").write_text("".join(f"{line}\n" for line in lines["val"][:-1]))
    assert source.load(DataOptions(data_root=tmp_path, custom_lists=True)).lists_digest not in (digest, None)


def test_other_custom_lists_are_another_run(tmp_path: Path) -> None:
    lines = write_imagenet_lt(tmp_path)
    first = resolve_config("ce", "imagenet_lt", data_root=str(tmp_path), custom_lists=True)
    assert (
        first.lists_digest
        == DATASETS.get("imagenet_lt")().load(DataOptions(data_root=tmp_path, custom_lists=True)).lists_digest
    )
    (tmp_path / "ImageNet_LT_val.txt").write_text("".join(f"{line}\n" for line in lines["val"][:-1]))
    second = resolve_config("ce", "imagenet_lt", data_root=str(tmp_path), custom_lists=True)
    assert second.lists_digest != first.lists_digest and second.run_id != first.run_id


@pytest.mark.parametrize(
    ("split", "line", "message"),
    [
        ("train", "train/n00000000/n00000000_1.JPEG 0",
         "ImageNet_LT_train.txt line 10 lists train/n00000000/n00000000_1.JPEG again (first at line 2); "
         "remove the repeated entry"),
        ("test", "train/n00000001/n00000001_2.JPEG 1",
         "ImageNet_LT_test.txt line 4 lists train/n00000001/n00000001_2.JPEG, also a training image "
         "(ImageNet_LT_train.txt line 8): a test image seen in training inflates the numbers"),
        ("val", "train/n00000002/n00000002_0.JPEG 2",
         "ImageNet_LT_val.txt line 7 lists train/n00000002/n00000002_0.JPEG, also a training image "
         "(ImageNet_LT_train.txt line 9): a val image seen in training"),
        ("test", "val/n00000007/ILSVRC2012_val_00000007.JPEG 7",
         "ImageNet_LT_test.txt line 4: label 7 has no training image in ImageNet_LT_train.txt; remove the "
         "entry or add training images of that class"),
    ],
)  # fmt: skip
def test_lists_that_make_numbers_meaningless_are_refused_even_when_custom(
    tmp_path: Path, capsys, split: str, line: str, message: str
) -> None:
    lines = write_imagenet_lt(tmp_path)
    (tmp_path / f"ImageNet_LT_{split}.txt").write_text("".join(f"{x}\n" for x in [*lines[split], line]))
    argv = ["run", "--method", "ce", "--dataset", "imagenet_lt", "--data-root", str(tmp_path),
            "--custom-lists", "--output", str(tmp_path / "results")]  # fmt: skip
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error, error


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("num_workers", [0, 1])
def test_an_image_that_does_not_decode_is_one_line_naming_its_list_line(
    tmp_path: Path, num_workers: int
) -> None:
    lines = write_imagenet_lt(tmp_path)
    image = tmp_path / lines["train"][6].split()[0]
    _truncate(image)
    options = DataOptions(data_root=tmp_path, num_workers=num_workers, custom_lists=True)
    train = DATASETS.get("imagenet_lt")().load(options).train
    batches = train.batches([(0, torch.tensor([0, 1])), (1, torch.tensor([5, 6, 7]))], train=True, device=CPU)
    assert next(batches)[1].tolist() == [0, 0]  # the batch before the truncated image comes through
    with pytest.raises(UnreadableImage) as caught:
        next(batches)
    message = str(caught.value)
    assert message.startswith(
        f"{image} (ImageNet_LT_train.txt line 7) cannot be decoded: image file is truncated"
    )
    assert message.endswith("; replace the file, or drop its entry from the list and pass --custom-lists")
    assert "\n" not in message


def test_data_check_decode_names_every_unreadable_image(tmp_path: Path, capsys) -> None:
    lines = write_imagenet_lt(tmp_path)
    argv = ["data", "check", "imagenet_lt", "--data-root", str(tmp_path), "--custom-lists", "--decode"]
    assert main(argv) == 0
    assert "decoded 18 images: none unreadable" in capsys.readouterr().out
    truncated = tmp_path / lines["train"][6].split()[0]
    not_an_image = tmp_path / lines["test"][1].split()[0]
    _truncate(truncated)
    not_an_image.write_text("<html>404 Not Found</html>")
    assert main(argv) == 2
    captured = capsys.readouterr()
    reported = [line for line in captured.out.splitlines() if "cannot be decoded" in line]
    assert reported == [
        f"{truncated} (ImageNet_LT_train.txt line 7) cannot be decoded: " + reported[0].split(": ", 1)[1],
        f"{not_an_image} (ImageNet_LT_test.txt line 2) cannot be decoded: not an image format PIL reads; "
        "replace the file, or drop its entry from the list and pass --custom-lists",
    ]
    assert "image file is truncated" in reported[0]
    assert "decoded 18 images: 2 unreadable" in captured.out
    assert captured.err == (
        "lt-bench: error: images that cannot be decoded: 2 (named above); replace the files, or drop "
        "their entries from the lists and pass --custom-lists\n"
    )


def test_fetch_keeps_only_a_published_blob(tmp_path: Path) -> None:
    upstream = tmp_path / "upstream.txt"
    upstream.write_bytes(b"train/n0/a.JPEG 0\n")
    destination = tmp_path / "lists" / "ImageNet_LT_train.txt"
    with pytest.raises(UserError, match="not the published 0{40}"):
        fetch(upstream.as_uri(), destination, ["0" * 40])
    assert not destination.exists()
    fetch(upstream.as_uri(), destination, [git_blob_sha1(upstream.read_bytes())])
    assert destination.read_bytes() == upstream.read_bytes()
    with pytest.raises(UserError, match="fetching .* failed"):
        fetch((tmp_path / "absent.txt").as_uri(), destination, [])


def test_places_lt_maps_list_paths_onto_the_official_places365_layout(tmp_path: Path) -> None:
    lines = {
        "train": ["train/apartment_building-outdoor/00000001.jpg 8", "train/airfield/00000002.jpg 1"],
        "val": ["train/airfield/00000003.jpg 1"],
        "test": ["val/airfield/Places365_val_00000004.jpg 1"],
    }
    official = [
        "data_256/a/apartment_building/outdoor/00000001.jpg",
        "data_256/a/airfield/00000002.jpg",
        "data_256/a/airfield/00000003.jpg",
        "val_256/Places365_val_00000004.jpg",
    ]
    for number, path in enumerate(official):
        write_jpeg(tmp_path / path, shade=number)
    for split, entries in lines.items():
        (tmp_path / f"Places_LT_{split}.txt").write_text("\n".join(entries) + "\n")
    data = DATASETS.get("places_lt")().load(DataOptions(data_root=tmp_path, custom_lists=True))
    assert data.num_classes == 365 and data.class_counts[1] == 1 and data.class_counts[8] == 1
    assert data.train.paths == [str(tmp_path / path) for path in official[:2]]
    assert data.test.paths == [str(tmp_path / official[3])]


def test_lt_bench_run_trains_and_evaluates_on_image_files(tmp_path: Path) -> None:
    write_imagenet_lt(tmp_path / "imagenet")
    argv = ["run", "--method", "ce", "--dataset", "imagenet_lt", "--data-root", str(tmp_path / "imagenet"),
            "--backbone", "lt_small_cnn", "--epochs", "1", "--batch-size", "3", "--num-workers", "1",
            "--custom-lists", "--output", str(tmp_path / "results")]  # fmt: skip
    assert main(argv) == 0
    (path,) = (tmp_path / "results" / "records").glob("*.json")
    record = read_record(path)
    assert record["class_counts"][:3] == [5, 3, 1] and len(record["class_counts"]) == 1000
    assert record["test_labels"] == [0, 1, 2] and record["shot_groups"]["few"][:3] == [0, 1, 2]
