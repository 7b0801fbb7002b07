"""`lt-bench data check`: load a dataset from disk, compare it with the published numbers and, when
asked, decode every image."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from multiprocessing.pool import ThreadPool

from tqdm import tqdm

from lt_bench.data.base import DATASETS, DataOptions, LongTailedData, Published
from lt_bench.data.files import FileSplit, decode_rgb
from lt_bench.errors import UnreadableImage, UserError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CheckReport:
    """What was found on disk; `lines` is the human-readable summary, `unreadable` names each image
    that could not be decoded (one line each, only with `decode`)."""

    dataset: str
    split_sizes: dict[str, int]
    shot_groups: tuple[int, int, int]
    lines: list[str]
    unreadable: list[str] = field(default_factory=list)


def check_dataset(name: str, options: DataOptions, *, decode: bool = False) -> CheckReport:
    """Load `name` (which checks every list line and image path, and that the lists are the published
    ones unless `options.custom_lists`), compare sizes and class numbers with the published ones (the
    first difference is a one-line UserError), then, with `decode`, decode every image file."""
    source = DATASETS.get(name)()
    data = source.load(options)
    published = None if data.lists_digest else source.published(options)
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
    if data.lists_digest:
        digest = data.lists_digest
        lines.append(f"  custom split lists (digest {digest}): not compared with the published ones")
    if published is not None:
        _compare(name, published, data.num_classes, sizes, shot_groups)
        lines.append(f"  matches the published numbers ({published.source})")
    unreadable: list[str] = []
    if decode:
        splits = _file_splits(data)
        if splits:
            unreadable = _unreadable_images(splits)
            decoded = sum(len(split) for split in splits)
            lines.append(f"  decoded {decoded:,} images: {len(unreadable) or 'none'} unreadable")
        else:
            lines.append("  no image files to decode: the images are held in memory, read when loaded")
    return CheckReport(name, sizes, shot_groups, lines, unreadable)


def _file_splits(data: LongTailedData) -> list[FileSplit]:
    """The distinct splits backed by image files (iNat's test split is its val split)."""
    splits: list[FileSplit] = []
    for split in (data.train, data.val, data.test):
        if isinstance(split, FileSplit) and all(split is not seen for seen in splits):
            splits.append(split)
    return splits


def _unreadable_images(splits: list[FileSplit]) -> list[str]:
    """One line per image that cannot be decoded, in list order; decoded by a pool of threads (one
    per usable CPU: PIL decodes without the GIL) under a progress bar on a terminal."""
    images = ((split, index) for split in splits for index in range(len(split)))
    total = sum(len(split) for split in splits)
    workers = len(os.sched_getaffinity(0))
    unreadable = []
    with (
        ThreadPool(workers) as pool,
        tqdm(total=total, desc="decoding", unit="image", file=sys.stderr, disable=None) as progress,
    ):
        for problem in pool.imap(_decode_problem, images, chunksize=32):
            progress.update()
            if problem is not None:
                unreadable.append(problem)
    return unreadable


def _decode_problem(image: tuple[FileSplit, int]) -> str | None:
    split, index = image
    try:
        decode_rgb(split.paths[index], split.origins.of(index))
    except UnreadableImage as error:
        return str(error)
    return None


def _published(published: Published | None, split: str) -> str:
    size = None if published is None else published.split_sizes.get(split)
    return "" if size is None else f"  (published {size:,})"


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
