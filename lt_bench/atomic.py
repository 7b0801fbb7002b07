"""Atomic file writes: write a temporary file in the same folder, fsync, then rename over the target."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write` on a temporary file next to `path`, then rename it to `path` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o666 & ~_umask())  # mkstemp makes 0600; give what open() would
        with os.fdopen(descriptor, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask. Reading it means setting it, so it is briefly the strict 0o077 (a file
    another thread creates meanwhile is private, never too open) and then set back."""
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def write_json(path: Path, payload: Any) -> None:
    text = json.dumps(payload, indent=1, sort_keys=True, allow_nan=False) + "\n"
    write_atomically(path, lambda handle: handle.write(text.encode()))


def save_torch(path: Path, payload: Any) -> None:
    import torch  # here, not at the top: the results commands write files without torch

    write_atomically(path, lambda handle: torch.save(payload, handle))
