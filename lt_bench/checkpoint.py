"""Training checkpoints: atomic, checksummed, and the previous one kept to fall back on.

A checkpoint file is `torch.save` bytes followed by a trailer holding their SHA-256, so a torn or
corrupted file is detected before it is unpickled; the checkpoint it replaced stays next to it as
`<name>.previous` and is used, with a warning, when the newest one is unreadable.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lt_bench.atomic import write_atomically
from lt_bench.errors import UserError

CHECKSUM_TAG = b"\nlt-bench-checkpoint-sha256:"


@dataclass
class Progress:
    """Where training stands: epochs done, steps done in the next epoch, that epoch's totals."""

    epoch: int = 0
    step: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0  # training time already spent in the current epoch
    log: list[dict[str, Any]] = field(default_factory=list)  # one entry per finished epoch

    def add_step(self, seen: int) -> None:
        """One more step done on `seen` images (its loss and correct count are summed on the device)."""
        self.step += 1
        self.seen += seen

    def finish_epoch(self, lr: float, seconds: float) -> dict[str, Any]:
        """Close the epoch: its log entry, with the totals reset for the next one."""
        entry = {
            "epoch": self.epoch + 1,
            "lr": lr,
            "loss": self.loss_sum / max(self.seen, 1),
            "train_top1": self.correct / max(self.seen, 1),
            "seconds": round(seconds, 3),
        }
        self.log.append(entry)
        self.epoch, self.step, self.loss_sum, self.correct, self.seen, self.seconds = (
            self.epoch + 1,
            0,
            0.0,
            0,
            0,
            0.0,
        )
        return entry


def previous_path(path: Path) -> Path:
    return path.with_name(path.name + ".previous")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write `payload` atomically with its checksum; the one it replaces becomes `.previous`."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    if path.exists():
        # Keep the current checkpoint as `.previous` without a moment where `path` is missing.
        staged = path.with_name(f".{path.name}.previous.{os.getpid()}.tmp")  # this process's own name
        staged.unlink(missing_ok=True)
        try:
            os.link(path, staged)
        except OSError:  # a filesystem without hard links
            shutil.copyfile(path, staged)
        os.replace(staged, previous_path(path))
    write_atomically(path, lambda handle: handle.write(body + CHECKSUM_TAG + _digest(body)))


def read_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """One checkpoint file, checked against its checksum; ValueError says what is wrong."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"not readable ({error.strerror})") from error
    body, tag, digest = data.rpartition(CHECKSUM_TAG)
    if not tag:
        raise ValueError("no checksum trailer (a torn write, or not an lt-bench checkpoint)")
    if digest != _digest(body):
        raise ValueError("checksum mismatch (a torn or corrupted write)")
    return torch.load(io.BytesIO(body), map_location=map_location, weights_only=False)


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any] | None:
    """The newest readable checkpoint: `path`, else `.previous` with a warning; None if none."""
    previous = previous_path(path)
    if not path.exists() and not previous.exists():
        return None
    problems = []
    for candidate in (path, previous):
        if not candidate.exists():
            problems.append(f"{candidate.name} is missing (interrupted while saving)")
            continue
        try:
            state = read_checkpoint(candidate, map_location)
        except ValueError as error:
            problems.append(f"{candidate.name}: {error}")
            continue
        if problems:
            warnings.warn(f"{'; '.join(problems)}; resuming from {candidate}", stacklevel=2)
        return state
    raise UserError(
        f"no readable checkpoint in {path.parent} ({'; '.join(problems)}); delete that folder "
        f"(or pass --rerun) to start fresh"
    )


def rng_state() -> dict[str, Any]:
    """The global random states a training step may draw from (torch, CUDA, numpy, Python)."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def training_payload(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    method: Any,
    progress: Progress,
    scaler: torch.amp.GradScaler,
) -> dict[str, Any]:
    """Everything a restart needs to continue at exactly `progress` (fp16's loss scale included)."""
    payload = {
        "progress": asdict(progress),
        "rng": rng_state(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "method": method.state_dict(),
    }
    if scaler.is_enabled():
        payload["scaler"] = scaler.state_dict()
    return payload


def restore_training(
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    method: Any,
    scaler: torch.amp.GradScaler,
) -> Progress:
    """Load a `training_payload` back into the objects; the progress to continue from."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    method.load_state_dict(state["method"])
    if "scaler" in state:
        scaler.load_state_dict(state["scaler"])
    restore_rng_state(state["rng"])
    return Progress(**state["progress"])


def _digest(body: bytes) -> bytes:
    return hashlib.sha256(body).hexdigest().encode()
