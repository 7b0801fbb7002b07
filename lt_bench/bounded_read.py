"""Bounded reads of input files: regular files only (a FIFO, device or folder is refused before a
byte is read, so nothing blocks or reads forever) and at most a size cap; one-line errors."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from lt_bench.errors import UserError

MiB = 1 << 20
RECORD_LIMIT = 512 * MiB  # a record with per-image predictions of a 1M-image test set is ~20 MiB
TEXT_LIMIT = 1024 * MiB  # split lists, annotation files (iNaturalist 2018 train: ~200 MiB), ledgers, logs
WEIGHTS_LIMIT = 64 * 1024 * MiB  # the largest published ViT checkpoints are a few GiB

_KINDS = {
    stat.S_ISDIR: "a folder",
    stat.S_ISFIFO: "a FIFO (named pipe)",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


class UnreadableInput(UserError):
    """An input file that is missing, not a regular file, too large, or not text: one line naming the
    file (and line), what is wrong, and the caller's fix."""

    def __init__(self, where: str, problem: str, fix: str) -> None:
        super().__init__(f"{where}: {problem}; {fix}")
        self.problem = problem


@contextmanager
def open_regular(path: Path, *, limit: int, fix: str) -> Iterator[BinaryIO]:
    """`path` opened for binary reading once it is known to be a regular file of at most `limit`
    bytes. The file is opened non-blocking, so a FIFO without a writer is refused, not waited on."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        raise UnreadableInput(str(path), f"not readable ({error.strerror or error})", fix) from error
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            kind = next((name for test, name in _KINDS.items() if test(info.st_mode)), "a special file")
            raise UnreadableInput(str(path), f"{kind}, not a regular file", fix)
        if info.st_size > limit:
            raise UnreadableInput(
                str(path), f"{info.st_size:,} bytes, more than the {limit:,} read at most", fix
            )
        os.set_blocking(descriptor, True)
        handle = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    with handle:
        yield handle


def read_bytes(path: Path, *, limit: int, fix: str) -> bytes:
    """The bytes of the regular file `path` (at most `limit`, even if it grows while read)."""
    with open_regular(path, limit=limit, fix=fix) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnreadableInput(str(path), f"grew past the {limit:,} bytes read at most while read", fix)
    return data


def read_text(path: Path, *, limit: int = TEXT_LIMIT, fix: str) -> str:
    """The UTF-8 text of the regular file `path`; a file that is not UTF-8 is named with its line."""
    return decode_utf8(read_bytes(path, limit=limit, fix=fix), path, fix=fix)


def decode_utf8(data: bytes, path: Path, *, fix: str) -> str:
    """`data` (the bytes of `path`) as UTF-8 text; UnreadableInput naming file:line otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        problem = f"not UTF-8 text (byte {data[error.start]:#04x})"
        raise UnreadableInput(f"{path}:{line}", problem, fix) from error
