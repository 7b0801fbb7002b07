"""`--select best-val`: keep the weights of the epoch with the best validation accuracy.

After each training epoch the model's validation features go through the method's inference (its
test-time knobs chosen on validation, as for the final test); when the balanced accuracy beats every
earlier epoch, the model and the method's state (e.g. TDE's moving average of that epoch) are saved
to `best.pt`, checksummed like every checkpoint. The official ImageNet-LT code of TDE and decoupling
keeps its best-validation epoch the same way; a test split never decides it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lt_bench.checkpoint import load_checkpoint, save_checkpoint
from lt_bench.method import Method


class BestEpoch:
    """Saves the best-validation epoch as it goes (`update`); `restore` loads it back."""

    def __init__(self, path: Path, model: torch.nn.Module, method: Method) -> None:
        self.path, self.model, self.method = path, model, method

    def update(self, epoch: int, score: float) -> None:
        """Save the model after (1-based) `epoch` when its validation `score` beats every earlier one."""
        best = load_checkpoint(self.path)
        if best is not None and score <= best["val_balanced_accuracy"]:  # the earlier epoch wins ties
            return
        payload = {
            "epoch": epoch,
            "val_balanced_accuracy": score,
            "model": self.model.state_dict(),
            "method": self.method.state_dict(),
        }
        try:
            save_checkpoint(self.path, payload)
        except OSError as error:  # name the file: a failed write of an open handle names none
            raise OSError(error.errno, error.strerror, str(self.path)) from error

    def restore(self, device: torch.device) -> dict[str, Any]:
        """Load the best epoch's model and method state; which epoch it was and its score."""
        best = load_checkpoint(self.path, device)
        if best is None:
            raise ValueError(f"{self.path} is missing: no epoch was validated")
        self.model.load_state_dict(best["model"])
        self.method.load_state_dict(best["method"])
        return {
            "rule": "best-val",
            "epoch": best["epoch"],
            "val_balanced_accuracy": best["val_balanced_accuracy"],
            "why": "the epoch with the best balanced accuracy on the validation split",
        }
