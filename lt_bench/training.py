"""The training loop: SGD with momentum over a method's index stream, resumable at any step."""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from lt_bench import distributed
from lt_bench.atomic import write_atomically
from lt_bench.backbones import LongTailClassifier
from lt_bench.checkpoint import (
    Progress,
    load_checkpoint,
    restore_training,
    save_checkpoint,
    training_payload,
)
from lt_bench.data.base import Split
from lt_bench.errors import UnreadableImage
from lt_bench.method import Method, checked_loss
from lt_bench.precision import autocast, grad_scaler
from lt_bench.test_crops import crop_views

CHECK_EVERY_STEPS = 50  # the device-side record of a non-finite loss is read at least this often
# Last parts of derived seeds (steps and epochs are never negative): the mixing batch's index stream of
# an epoch, and a step's draws of `Method.mix_batch`.
MIXING_ORDER, MIXING_DRAWS = -1, -2


@dataclass(frozen=True)
class StagePlan:
    """One training stage: how many epochs, at which learning rate per epoch."""

    epochs: int
    batch_size: int
    learning_rate: Callable[[int], float]
    momentum: float
    weight_decay: float
    seed: int
    nesterov: bool = False
    stage: int = 0  # 0: a run's own (first) stage, 1: the second stage on a finished first-stage run
    precision: str = "fp32"  # autocast of the backbone: fp32, bf16 or fp16 (see lt_bench.precision)


class TrainingFailed(RuntimeError):
    """Training cannot go on at (0-based) `epoch`, `step`; `fix` says what the user can change."""

    fix = ""

    def __init__(self, reason: str, epoch: int, step: int) -> None:
        super().__init__(f"{reason} at epoch {epoch + 1}, step {step + 1}")
        self.epoch, self.step = epoch, step


class TrainingDiverged(TrainingFailed):
    """The loss became NaN or infinite."""

    fix = "lower --lr"

    def __init__(self, epoch: int, step: int, loss: float) -> None:
        super().__init__(f"loss became {loss}", epoch, step)
        self.loss = loss


class DeviceTotals:
    """The epoch's loss sum and correct predictions, and the first step whose loss was not finite,
    kept on the training device so that no step waits for it; `settle` reads them (one sync)."""

    def __init__(self, progress: Progress, device: torch.device) -> None:
        self.loss_sum = torch.tensor(progress.loss_sum, dtype=torch.float64, device=device)
        self.correct = torch.tensor(progress.correct, dtype=torch.int64, device=device)
        self.bad_step = torch.tensor(-1, dtype=torch.int64, device=device)  # -1: every loss finite
        self.bad_loss = torch.tensor(0.0, dtype=torch.float64, device=device)

    def add(self, step: int, loss: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        loss = loss.detach().double()
        first_bad = torch.isfinite(loss).logical_not() & (self.bad_step < 0)
        self.bad_step = torch.where(first_bad, step, self.bad_step)
        self.bad_loss = torch.where(first_bad, loss, self.bad_loss)
        self.loss_sum += loss * len(targets)
        self.correct += (logits.argmax(1) == targets).sum()

    def settle(self, progress: Progress, epoch: int) -> None:
        """Raise TrainingDiverged naming the first non-finite step, else copy the totals to `progress`.

        Steps after a non-finite loss may have spoiled the weights: call this before every checkpoint.
        """
        values = torch.stack([self.bad_step.double(), self.bad_loss, self.loss_sum, self.correct.double()])
        bad_step, bad_loss, loss_sum, correct = values.tolist()
        if bad_step >= 0:
            raise TrainingDiverged(epoch, int(bad_step), bad_loss)
        progress.loss_sum, progress.correct = loss_sum, int(correct)


class TrainingOutOfMemory(TrainingFailed):
    """The device (or the host) ran out of memory."""

    fix = "pass a smaller --batch-size or --backbone"

    def __init__(self, epoch: int, step: int, device: torch.device) -> None:
        super().__init__(f"out of memory on {device}", epoch, step)


class TrainingImageUnreadable(TrainingFailed):
    """A training image does not decode; the data layer's message names the file and its fix."""

    def __init__(self, error: UnreadableImage, epoch: int, step: int) -> None:
        RuntimeError.__init__(self, f"training epoch {epoch + 1}, step {step + 1}: {error}")
        self.epoch, self.step = epoch, step


class CheckpointNotWritten(TrainingFailed):
    """A checkpoint or the epoch log could not be written (a full disk, a read-only folder, …)."""

    fix = "free space there (or pass another --output) and rerun the same command to resume"

    def __init__(self, path: Path, error: OSError, epoch: int, step: int) -> None:
        super().__init__(f"cannot write {path} ({error.strerror or error})", epoch, step)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (run seed, epoch, step)."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value ^ (part + 0x9E3779B97F4A7C15 + (value << 6) + (value >> 2))) & (2**63 - 1)
    return value


def seed_global_rng(seed: int) -> None:
    """Seed every global random stream a run may draw from (torch and CUDA, NumPy, Python)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def make_optimizer(model: nn.Module, plan: StagePlan, method: Method) -> torch.optim.SGD:
    """SGD with momentum (the confounder the TDE paper studies) over the method's groups of trainable
    parameters, each at the plan's weight decay unless the group sets its own."""
    groups = [group for group in method.parameter_groups(model, plan.weight_decay) if group["params"]]
    if not groups:  # a stage with nothing to train still checkpoints
        groups = [{"params": [nn.Parameter(torch.zeros(0))]}]
    return torch.optim.SGD(
        groups,
        lr=plan.learning_rate(0),
        momentum=plan.momentum,
        weight_decay=plan.weight_decay,
        nesterov=plan.nesterov,
    )


def train(
    model: nn.Module,
    method: Method,
    split: Split,
    plan: StagePlan,
    *,
    device: torch.device,
    checkpoint_path: Path,
    log_path: Path,
    extra_checkpoint: dict[str, Any],
    checkpoint_seconds: float,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Train `model` from the step its checkpoint reached, checkpointing after every epoch and every
    `checkpoint_seconds` mid-epoch; an interrupted run continues exactly as if never stopped.

    `on_epoch_end(entry)` runs in the main process after each epoch's training, before its checkpoint
    (so a run killed in between repeats the epoch and the call), with the epoch's log entry, to which
    it may add fields (validation accuracy)."""
    optimizer = make_optimizer(model, plan, method)
    scaler = grad_scaler(plan.precision, device)
    state = load_checkpoint(checkpoint_path, device)
    if state is None:  # a fresh start draws from the run's seed and stage, never from process history
        seed_global_rng(derived_seed(plan.seed, plan.stage))
        progress = Progress()
    else:
        progress = restore_training(state, model, optimizer, method, scaler)
    steps = len(split) // plan.batch_size

    def checkpoint() -> None:
        payload = training_payload(model, optimizer, method, progress, scaler)
        try:
            save_checkpoint(checkpoint_path, {**extra_checkpoint, **payload})
        except OSError as error:
            raise CheckpointNotWritten(checkpoint_path, error, *_last_step(progress, steps)) from error

    def write_log() -> None:
        try:
            _write_log(log_path, progress.log)
        except OSError as error:
            raise CheckpointNotWritten(log_path, error, *_last_step(progress, steps)) from error

    if state is not None and distributed.is_main_process():
        write_log()  # a kill may have come between checkpoint and log
    labels = split.labels
    network = _parallel(model, device)
    display = ProgressDisplay(plan, steps, progress)

    def settle(totals: DeviceTotals, epoch: int) -> None:
        """Read the totals from the device (stopping at a non-finite loss); show the mean loss so far."""
        totals.settle(progress, epoch)
        display.loss(progress.loss_sum / max(progress.seen, 1))

    next_checkpoint = time.monotonic() + checkpoint_seconds
    try:
        for epoch in range(progress.epoch, plan.epochs):
            started = time.perf_counter() - progress.seconds
            lr = plan.learning_rate(epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if progress.step == 0:  # a mid-epoch checkpoint holds what on_epoch_start did
                method.on_epoch_start(epoch, lr)
            order = method.sample_order(labels, torch.Generator().manual_seed(derived_seed(plan.seed, epoch)))
            second_order = method.mixing_sample_order(
                labels, torch.Generator().manual_seed(derived_seed(plan.seed, epoch, MIXING_ORDER))
            )
            batches = [
                (
                    _shard_seed(plan.seed, epoch, step),
                    _step_indices(order, second_order, step, plan, method.views),
                )
                for step in range(progress.step, steps)
            ]
            model.train()
            totals = DeviceTotals(progress, device)
            stream = split.batches(batches, train=True, device=device)
            for step, (images, targets) in enumerate(stream, start=progress.step):
                images, targets, second = _split_views(
                    images, targets, method.views, second_order is not None
                )
                rng = np.random.default_rng(derived_seed(plan.seed, plan.stage, epoch, step, MIXING_DRAWS))
                mixed = method.mix_batch(images, targets, second, epoch, rng)
                with autocast(plan.precision, device):  # the backbone only: see LongTailClassifier
                    features, logits = network(images if mixed is None else mixed.images)
                method.on_train_features(features.detach())
                if mixed is None:
                    loss = checked_loss(method.loss_with_features(logits, features, targets))
                else:
                    loss = checked_loss(method.mixed_loss(logits, mixed))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                with torch.no_grad():
                    method.on_step_end(model)
                prediction_logits = method.combine_experts(logits[: len(targets)].detach())  # (l)
                totals.add(step, loss, prediction_logits, targets)  # no host sync: read below
                progress.add_step(len(targets))
                display.step(epoch, progress.seen, time.perf_counter() - started)
                due = time.monotonic() >= next_checkpoint and step + 1 < steps
                if due and distributed.is_main_process():
                    settle(totals, epoch)  # a checkpoint only of weights every loss left finite
                    progress.seconds = time.perf_counter() - started
                    checkpoint()
                    next_checkpoint = time.monotonic() + checkpoint_seconds
                elif (step + 1) % CHECK_EVERY_STEPS == 0:
                    settle(totals, epoch)
            settle(totals, epoch)
            progress.loss_sum, progress.correct, progress.seen = distributed.global_sum(
                torch.tensor(
                    [progress.loss_sum, progress.correct, progress.seen], dtype=torch.float64, device=device
                )
            ).tolist()
            images = int(progress.seen)
            entry = progress.finish_epoch(lr, time.perf_counter() - started)
            display.epoch(entry, images, progress.log)
            if not distributed.is_main_process():
                continue
            if on_epoch_end is not None:
                try:
                    on_epoch_end(entry)
                except OSError as error:
                    path = Path(error.filename) if error.filename else checkpoint_path.parent
                    raise CheckpointNotWritten(path, error, *_last_step(progress, steps)) from error
                model.train()
            checkpoint()
            write_log()
    except UnreadableImage as error:
        raise TrainingImageUnreadable(error, progress.epoch, progress.step) from error
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error):
            raise
        raise TrainingOutOfMemory(progress.epoch, progress.step, device) from error
    finally:
        display.close()


def _last_step(progress: Progress, steps: int) -> tuple[int, int]:
    """(epoch, step), 0-based, of the last step `progress` has taken (the one a checkpoint holds)."""
    if progress.step == 0 and progress.epoch > 0:
        return progress.epoch - 1, steps - 1
    return progress.epoch, max(progress.step - 1, 0)


class ProgressDisplay:
    """What training shows (rank 0 only): on a terminal a step-level bar with images/s and the epoch's
    mean loss as last read from the device (every 50 steps at least); elsewhere (pipes, nohup, SLURM
    logs) one plain line per epoch on stderr."""

    def __init__(self, plan: StagePlan, steps: int, progress: Progress) -> None:
        self.epochs = plan.epochs
        self.shown = distributed.is_main_process()
        self.bar = None
        self.mean_loss = "…"
        if self.shown and sys.stderr.isatty():
            self.bar = tqdm(
                total=plan.epochs * steps,
                initial=progress.epoch * steps + progress.step,
                unit="step",
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
            )

    def step(self, epoch: int, seen: int, seconds: float) -> None:
        """After each step: `seen` images of this process in the epoch so far, in `seconds`."""
        if self.bar is None:
            return
        rate = seen * distributed.world_size() / max(seconds, 1e-9)
        self.bar.set_description(f"epoch {epoch + 1}/{self.epochs}", refresh=False)
        self.bar.set_postfix_str(f"loss {self.mean_loss}  {rate:.0f} img/s", refresh=False)
        self.bar.update()

    def loss(self, mean: float) -> None:
        """The epoch's mean training loss so far, each time the loop reads it from the device."""
        self.mean_loss = f"{mean:.3f}"

    def epoch(self, entry: dict[str, Any], images: int, log: list[dict[str, Any]]) -> None:
        """After each epoch, given its log entry, the images it trained on and the log so far."""
        if not self.shown or self.bar is not None:
            return
        seconds = entry["seconds"]
        remaining = (self.epochs - entry["epoch"]) * sum(e["seconds"] for e in log) / len(log)
        print(
            f"epoch {entry['epoch']}/{self.epochs}  loss {entry['loss']:.3f}  "
            f"train top1 {100 * entry['train_top1']:.1f}%  lr {_rate(entry['lr'])}  "
            f"{images / max(seconds, 1e-9):.0f} img/s  ETA {timedelta(seconds=round(remaining))}",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _rate(lr: float) -> str:
    return f"{lr:.4f}" if lr >= 1e-3 else f"{lr:.2e}"


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, or the CPU allocator's RuntimeError."""
    return isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


def _write_log(path: Path, entries: list[dict[str, Any]]) -> None:
    """Rewrite the per-epoch log from the checkpoint's entries: it never lags or repeats on restart."""
    text = "".join(json.dumps(entry) + "\n" for entry in entries)
    write_atomically(path, lambda handle: handle.write(text.encode()))


def _parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` in DistributedDataParallel when several processes train it and it has trainable weights."""
    if not distributed.is_distributed() or not any(p.requires_grad for p in model.parameters()):
        return model
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _step_indices(
    order: torch.Tensor, second_order: torch.Tensor | None, step: int, plan: StagePlan, views: int
) -> torch.Tensor:
    """This process's images of a step: its shard of the batch once per view, then its shard of the
    mixing batch when there is one; loaded as one batch, each copy gets its own augmentation draw."""
    window = slice(step * plan.batch_size, (step + 1) * plan.batch_size)
    parts = [distributed.shard(order[window])] * views
    if second_order is not None:
        parts.append(distributed.shard(second_order[window]))
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _split_views(
    images: torch.Tensor, targets: torch.Tensor, views: int, mixing: bool
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
    """A loaded `_step_indices` batch as (the views' images, the batch's targets, the mixing batch)."""
    size = len(targets) // (views + mixing)
    second = (images[views * size :], targets[views * size :]) if mixing else None
    return images[: views * size], targets[:size], second


def _shard_seed(seed: int, epoch: int, step: int) -> int:
    """The augmentation seed of this process's shard of a step's batch (one process: the batch's seed)."""
    if distributed.world_size() == 1:
        return derived_seed(seed, epoch, step)
    return derived_seed(seed, epoch, step, distributed.rank())


@torch.no_grad()
def extract_features(
    model: LongTailClassifier,
    split: Split,
    *,
    batch_size: int,
    device: torch.device,
    precision: str,
    augmentation_seed: int | None = None,
    crops: int = 1,
) -> torch.Tensor:
    """Eval-mode fp32 backbone features of every image of `split`, in split order, the backbone under
    the autocast of `precision` as in training; with `augmentation_seed`, of the images under the
    training augmentation drawn from that seed; with `crops` > 1, those of each image's crops in turn
    (`lt_bench.test_crops.crop_views`)."""
    model.backbone.eval()
    indices = torch.arange(len(split))
    batches = [
        (
            0 if augmentation_seed is None else derived_seed(augmentation_seed, start),
            indices[start : start + batch_size],
        )
        for start in range(0, len(split), batch_size)
    ]
    with autocast(precision, device):
        stream = split.batches(batches, train=augmentation_seed is not None, device=device)
        return torch.cat([model.features(crop_views(images, crops)) for images, _ in stream])
