"""Training curves: validation accuracy in the per-epoch log, the curve copied into the record, and
optional TensorBoard event files for watching a run live."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lt_bench.best_epoch import BestEpoch
from lt_bench.errors import UserError

CURVE_POINTS = 10  # validation points per stage when --val-every is not given
CURVE_FIELDS = ("epoch", "loss", "train_top1", "val_balanced_accuracy")
TENSORBOARD_SCALARS = ("loss", "train_top1", "lr", "val_balanced_accuracy")


def validation_interval(epochs: int, every: int | None) -> int:
    """Epochs between validation passes: `every`, or about CURVE_POINTS over the stage; 0 is never."""
    return max(1, round(epochs / CURVE_POINTS)) if every is None else every


class EpochValidation:
    """The epoch-end hook: the validation balanced accuracy after every `every`-th and the last
    epoch (every epoch when keeping the best one), added to the epoch's log entry; with a
    TensorBoard folder, the entry's numbers as scalars."""

    def __init__(
        self,
        score: Callable[[], float],
        *,
        every: int,
        epochs: int,
        best_epoch: BestEpoch | None = None,
        tensorboard: Path | None = None,
        report: Callable[[int, float], None] | None = None,
    ) -> None:
        self.score, self.every, self.epochs, self.best_epoch = score, every, epochs, best_epoch
        self.report = report  # told each (epoch, score); it may raise to stop training (a pruned trial)
        self.tensorboard = tensorboard
        self._writer: Any = None
        if tensorboard is not None:
            require_tensorboard()

    def __call__(self, entry: dict[str, Any]) -> None:
        epoch = entry["epoch"]
        due = self.every > 0 and (epoch % self.every == 0 or epoch == self.epochs)
        if due or self.best_epoch is not None:
            entry["val_balanced_accuracy"] = self.score()
            if self.best_epoch is not None:
                self.best_epoch.update(epoch, entry["val_balanced_accuracy"])
            if self.report is not None:
                self.report(epoch, entry["val_balanced_accuracy"])
        if self.tensorboard is not None:
            self._write_scalars(entry)

    def _write_scalars(self, entry: dict[str, Any]) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.tensorboard))
        for name in TENSORBOARD_SCALARS:
            if entry.get(name) is not None:
                self._writer.add_scalar(name, entry[name], entry["epoch"])
        self._writer.flush()


def require_tensorboard() -> None:
    """A one-line error when the optional tensorboard package is missing."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise UserError(
            "--tensorboard needs the tensorboard package: pip install 'lt-bench[tensorboard]' "
            "(or pip install tensorboard), or drop --tensorboard"
        ) from None


def training_curve(log_path: Path) -> list[dict[str, Any]]:
    """The per-epoch log as the record keeps it: epoch, loss, train top-1 and, where measured, the
    validation balanced accuracy."""
    if not log_path.exists():
        return []
    entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    return [{name: entry[name] for name in CURVE_FIELDS if name in entry} for entry in entries]
