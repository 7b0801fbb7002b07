"""Split lists of the long-tail literature: `relative/path label` text files, fetched and verified.

A list is read from the user's copy; it is fetched over the network only when asked (`--download`),
and a fetched copy is kept only if its git blob SHA-1 is a published one.
"""

from __future__ import annotations

import hashlib
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lt_bench.atomic import write_atomically
from lt_bench.errors import UserError


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


def read_path_label_list(path: Path, num_classes: int) -> tuple[list[str], np.ndarray]:
    """Relative paths and int64 labels of a `relative/path label` list; UserError naming file:line."""
    paths: list[str] = []
    labels: list[int] = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            fields = line.split()
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise UserError(
                    f"{path}:{line_number}: expected 'relative/path label', got {line.strip()!r}; "
                    f"the list is truncated or corrupt: fetch it again"
                )
            label = int(fields[1])
            if not 0 <= label < num_classes:
                raise UserError(f"{path}:{line_number}: label {label} is outside 0..{num_classes - 1}")
            paths.append(fields[0])
            labels.append(label)
    if not paths:
        raise UserError(f"{path} lists no images; fetch it again")
    return paths, np.asarray(labels, dtype=np.int64)


def resolve_images(
    root: Path, relative_paths: Sequence[str], layouts: Sequence[Callable[[str], str]], described_as: str
) -> list[str]:
    """Absolute image paths under `root`, using the first layout that holds the first image.

    Every image is checked; a missing one is a UserError naming `described_as` and its line (entry).
    """
    layout = next((lay for lay in layouts if (root / lay(relative_paths[0])).is_file()), layouts[0])
    resolved = [str(root / layout(relative)) for relative in relative_paths]
    for entry, absolute in enumerate(resolved, 1):
        if not Path(absolute).is_file():
            raise UserError(
                f"{described_as}:{entry}: image {absolute} does not exist; put the images under {root}"
            )
    return resolved
