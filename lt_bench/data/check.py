"""`lt-bench data check`: load a dataset from disk and compare it with the published numbers."""

from __future__ import annotations

from dataclasses import dataclass

from lt_bench.data.base import DATASETS, DataOptions, Published
from lt_bench.data.split_lists import git_blob_sha1
from lt_bench.errors import UserError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CheckReport:
    """What was found on disk; `lines` is the human-readable summary."""

    dataset: str
    split_sizes: dict[str, int]
    shot_groups: tuple[int, int, int]
    lines: list[str]


def check_dataset(name: str, options: DataOptions) -> CheckReport:
    """Load `name` (which checks every list line and image path), then compare sizes, class numbers
    and list checksums with the published ones; the first difference is a one-line UserError."""
    source = DATASETS.get(name)()
    data = source.load(options)
    published = source.published(options)
    if published is not None:
        _check_list_files(published)
    sizes = {split: len(getattr(data, split)) for split in SPLITS}
    groups = data.shot_rule.groups(data.class_counts)
    shot_groups = (len(groups["many"]), len(groups["medium"]), len(groups["few"]))
    lines = [
        f"{name}: {data.num_classes} classes, {sum(1 for c in data.class_counts if c)} with training images"
    ]
    lines += [f"  {split:<5} {sizes[split]:>9,} images" + _published(published, split) for split in SPLITS]
    lines.append(
        f"  many / medium / few classes: {' / '.join(map(str, shot_groups))} "
        f"(many > {data.shot_rule.many_above}, few < {data.shot_rule.few_below} training images)"
        + (
            ""
            if published is None or published.shot_groups is None
            else f"; published {' / '.join(map(str, published.shot_groups))}"
        )
    )
    if published is not None:
        _compare(name, published, data.num_classes, sizes, shot_groups)
        lines.append(f"  matches the published numbers ({published.source})")
    return CheckReport(name, sizes, shot_groups, lines)


def _published(published: Published | None, split: str) -> str:
    size = None if published is None else published.split_sizes.get(split)
    return "" if size is None else f"  (published {size:,})"


def _check_list_files(published: Published) -> None:
    for split, (path, blobs) in published.list_files.items():
        blob = git_blob_sha1(path.read_bytes())
        if blobs and blob not in blobs:
            raise UserError(
                f"{path} has git blob {blob}, the published {split} list has {' or '.join(blobs)}: "
                f"it is truncated or a different version; fetch it again (--download after deleting it)"
            )


def _compare(
    name: str,
    published: Published,
    num_classes: int,
    sizes: dict[str, int],
    shot_groups: tuple[int, int, int],
) -> None:
    if num_classes != published.num_classes:
        raise UserError(
            f"{name} on disk has {num_classes} classes, the published dataset {published.num_classes}"
        )
    for split, expected in published.split_sizes.items():
        if expected is not None and sizes[split] != expected:
            raise UserError(
                f"{name} {split} split has {sizes[split]:,} images, the published one {expected:,}: "
                f"the files are incomplete or a different version; fetch them again"
            )
    if published.shot_groups is not None and shot_groups != published.shot_groups:
        raise UserError(
            f"{name} many / medium / few classes are {shot_groups}, published {published.shot_groups}: "
            f"the training split differs from the published one"
        )
