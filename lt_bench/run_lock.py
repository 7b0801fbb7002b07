"""One process owns a run at a time: an OS-level lock on `<output>/locks/<run_id>.lock`.

The lock is `flock`'s, held by an open file: the kernel drops it when its process ends, however it
ends (kill -9 included), so a lock file left behind never blocks a later run.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lt_bench.errors import UserError


def lock_path(output: str | Path, run_id: str) -> Path:
    return Path(output) / "locks" / f"{run_id}.lock"


@contextmanager
def exclusive_run(output: str | Path, run_id: str) -> Iterator[None]:
    """Hold run `run_id`'s lock for the block; while another process holds it, a one-line UserError."""
    path = lock_path(output, run_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a+")
    except OSError as error:
        raise UserError(
            f"cannot create the run lock {path} ({error.strerror or error}); pass a writable --output"
        ) from error
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(
                f"run {run_id} is being run by {holder} (lock {path}); wait for it to end, then rerun "
                "the same command to use its record"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield
