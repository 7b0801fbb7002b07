"""Split lists of the long-tail literature: `relative/path label` text files, fetched and verified.

A list is read from the user's copy; it is fetched over the network only when asked (`--download`),
and a fetched copy is kept only if its git blob SHA-1 is a published one. Loaded lists must be the
published ones (unless custom lists are asked for) and never repeat an image, share one between
training and val/test, or hold a class without training images.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lt_bench.atomic import write_atomically
from lt_bench.bounded_read import TEXT_LIMIT, read_bytes, read_text
from lt_bench.data.base import Published
from lt_bench.errors import UserError

LIST_FIX = "a list is UTF-8 text of 'relative/path label' lines: fetch it again, or save it as such"


def git_blob_sha1(data: bytes) -> str:
    """The id `git hash-object` gives a file: SHA-1 of b"blob <size>\\0" followed by the bytes."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def fetch(url: str, destination: Path, accepted_blobs: Sequence[str], *, timeout_s: float = 60.0) -> None:
    """Download `url` to `destination`, keeping it only when its git blob is one of `accepted_blobs`."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            data = response.read()
    except OSError as error:  # URLError and timeouts are OSErrors
        raise UserError(f"fetching {url} failed ({error}); copy the file to {destination} by hand") from error
    blob = git_blob_sha1(data)
    if accepted_blobs and blob not in accepted_blobs:
        raise UserError(
            f"{url} has git blob {blob}, not the published {' or '.join(accepted_blobs)}; "
            f"the file changed upstream: copy the published version to {destination} by hand"
        )
    write_atomically(destination, lambda handle: handle.write(data))


def ensure_list(path: Path, url: str, accepted_blobs: Sequence[str], *, download: bool, where: str) -> Path:
    """`path` if the user has it; fetched from `url` if `download`; otherwise a UserError naming `where`."""
    if path.is_file():
        return path
    if download:
        fetch(url, path, accepted_blobs)
        return path
    raise UserError(f"{path} is missing: {where}")


@dataclass(frozen=True)
class Origins:
    """Where each image of a split is listed: a file, and per image its line or image id."""

    file: Path
    ids: Sequence[int] | None = None  # image ids of a JSON annotation file; None: image i is on line i + 1

    def entry(self, index: int) -> str:
        """Where image `index` sits in the file: 'line 12' or 'image id 7'."""
        return f"line {index + 1}" if self.ids is None else f"image id {self.ids[index]}"

    def of(self, index: int) -> str:
        """The file name and entry of image `index`, e.g. 'ImageNet_LT_train.txt line 12'."""
        return f"{self.file.name} {self.entry(index)}"


@dataclass(frozen=True)
class SplitList:
    """One split as its list file gives it: image paths relative to the data root, labels, origins."""

    names: list[str]
    labels: np.ndarray  # int64
    origins: Origins

    def __len__(self) -> int:
        return len(self.names)


def read_path_label_list(path: Path, num_classes: int) -> SplitList:
    """The entries of a `relative/path label` list; UserError naming file:line."""
    paths: list[str] = []
    labels: list[int] = []
    text = read_text(path, fix=LIST_FIX)
    for line_number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise UserError(
                f"{path}:{line_number}: expected 'relative/path label', got {line.strip()!r}; "
                f"the list is truncated or corrupt: fetch it again"
            )
        if not fields[1].isascii():  # str.isdigit also takes '٣' and '³'
            raise UserError(
                f"{path}:{line_number}: label {fields[1]!r} is not written in the digits 0-9; "
                f"write it in ASCII digits, or fetch the list again"
            )
        label = int(fields[1])
        if not 0 <= label < num_classes:
            raise UserError(f"{path}:{line_number}: label {label} is outside 0..{num_classes - 1}")
        paths.append(fields[0])
        labels.append(label)
    if not paths:
        raise UserError(f"{path} lists no images; fetch it again")
    return SplitList(paths, np.asarray(labels, dtype=np.int64), Origins(path))


def check_split_lists(
    lists: dict[str, SplitList], published: Published, *, num_classes: int, custom: bool, root: Path
) -> None:
    """Refuse lists other than the published ones (unless `custom`), and, always, lists that make the
    numbers meaningless: a repeated image, a val/test image also in training, a class without training
    images. Images are compared as files (`image_key`: `./a/../b//x` is `b/x`, a symlink its target).
    Each is a one-line UserError naming the file and entry; `lists` must hold "train"."""
    if not custom:
        _refuse_unpublished(lists, published, num_classes)
    train = lists["train"]
    keys = {
        split: [image_key(root, name) for name in split_list.names] for split, split_list in lists.items()
    }
    positions = {split: _positions_refusing_repeats(lists[split], keys[split]) for split in lists}
    training_images = positions["train"]
    training_classes = set(np.unique(train.labels).tolist())
    for split, split_list in lists.items():
        if split_list is train:
            continue
        for index, (name, label) in enumerate(zip(split_list.names, split_list.labels.tolist(), strict=True)):
            in_training = training_images.get(keys[split][index])
            if in_training is not None:
                raise UserError(
                    f"{split_list.origins.of(index)} lists {name}, also a training image "
                    f"({train.origins.of(in_training)}): a {split} image seen in training "
                    f"inflates the numbers; remove it from one of the lists"
                )
            if label not in training_classes:
                raise UserError(
                    f"{split_list.origins.of(index)}: label {label} has no training image in "
                    f"{train.origins.file.name}; remove the entry or add training images of that class"
                )


def _refuse_unpublished(lists: dict[str, SplitList], published: Published, num_classes: int) -> None:
    """The same comparison `lt-bench data check` makes: git blobs where published, else sizes and classes."""
    fix = "fetch the published lists again, or pass --custom-lists to run on these lists as a named variant"
    for split, split_list in lists.items():
        file = split_list.origins.file
        _, blobs = published.list_files.get(split, (file, ()))
        if blobs:
            blob = git_blob_sha1(read_bytes(file, limit=TEXT_LIMIT, fix=LIST_FIX))
            if blob not in blobs:
                raise UserError(
                    f"{file} is not the published {split} list (git blob {blob}, published "
                    f"{' or '.join(blobs)}); {fix}"
                )
        expected = published.split_sizes.get(split)
        if expected is not None and len(split_list) != expected:
            raise UserError(
                f"{file} is not the published {split} list ({len(split_list):,} images, published "
                f"{expected:,}); {fix}"
            )
    if num_classes != published.num_classes:
        raise UserError(
            f"{lists['train'].origins.file} is not the published train list ({num_classes:,} classes, "
            f"published {published.num_classes:,}); {fix}"
        )


def image_key(root: Path, name: str) -> str:
    """What a listed path names: the resolved file under `root` (symlinks followed) when it exists,
    else the path with `.`, `..` and repeated slashes folded."""
    folded = posixpath.normpath(name)
    target = root / folded
    return os.path.realpath(target) if target.exists() else folded


def _positions_refusing_repeats(split_list: SplitList, keys: Sequence[str]) -> dict[str, int]:
    """Each image's (key's) index in the list; a UserError at the first image listed twice."""
    first_at: dict[str, int] = {}
    for index, (name, key) in enumerate(zip(split_list.names, keys, strict=True)):
        earlier = first_at.setdefault(key, index)
        if earlier != index:
            raise UserError(
                f"{split_list.origins.of(index)} lists {name} again (first at "
                f"{split_list.origins.entry(earlier)}); remove the repeated entry"
            )
    return first_at


def files_digest(paths: Sequence[Path]) -> str:
    """A short sha256 over the files' bytes, in order: the name of a custom-lists variant."""
    digest = hashlib.sha256()
    for path in paths:
        data = read_bytes(path, limit=TEXT_LIMIT, fix="put the split list there, a regular text file")
        digest.update(b"%d\0" % len(data) + data)
    return digest.hexdigest()[:12]


def resolve_images(root: Path, split_list: SplitList, layouts: Sequence[Callable[[str], str]]) -> list[str]:
    """Absolute image paths under `root`, using the first layout that holds the first image.

    Every image is checked; a missing one is a UserError naming its list file and entry.
    """
    names = split_list.names
    layout = next((lay for lay in layouts if (root / lay(names[0])).is_file()), layouts[0])
    resolved = [str(root / layout(relative)) for relative in names]
    for index, absolute in enumerate(resolved):
        if not Path(absolute).is_file():
            raise UserError(
                f"image {absolute} ({split_list.origins.of(index)}) does not exist; "
                f"put the images under {root}"
            )
    return resolved
