"""What every dataset provides: splits, training class counts, the shot rule and a recipe."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol

import torch

from lt_bench.errors import UserError
from lt_bench.registry import Registry


@dataclass(frozen=True)
class Recipe:
    """A dataset's default training recipe (paper-faithful where a paper sets one)."""

    backbone: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    momentum: float = 0.9
    schedule: str = "cosine"  # "cosine" or "multistep"
    warmup_epochs: int = 0
    milestones: tuple[int, ...] = ()  # 0-based epochs from which the rate is multiplied by lr_decay
    lr_decay: float = 0.1  # multistep factor applied at each milestone
    nesterov: bool = False
    warmup_start: float = 0.0  # warm-up epoch e runs at lr·(s + (1 − s)·(e + 1)/warmup_epochs)
    zero_init_last: bool = True  # timm's zero-initialised last BatchNorm of each residual block
    select: str = "last"  # which epoch's weights are tested: "last" or "best-val"


@dataclass(frozen=True)
class ShotRule:
    """Many/medium/few groups from *training* counts: many > 100, medium 20–100, few < 20.

    The rule of classifier-balancing (`utils.py` `shot_acc`) and the TDE code (`classification/utils.py`).
    """

    many_above: int = 100
    few_below: int = 20

    def group(self, count: int) -> str:
        if count > self.many_above:
            return "many"
        if count < self.few_below:
            return "few"
        return "medium"

    def groups(self, class_counts: Sequence[int]) -> dict[str, list[int]]:
        """Class indices per group, in the order many, medium, few."""
        result: dict[str, list[int]] = {"many": [], "medium": [], "few": []}
        for class_index, count in enumerate(class_counts):
            result[self.group(count)].append(class_index)
        return result


class Split(Protocol):
    """One split of a dataset: labels, and batches of images for given indices."""

    labels: torch.Tensor  # int64, one label per image

    def __len__(self) -> int: ...

    def batches(
        self, index_batches: Sequence[tuple[int, torch.Tensor]], *, train: bool, device: torch.device
    ) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """(images, labels) for each (batch_seed, indices); `train` turns augmentation on."""
        ...


@dataclass(frozen=True)
class TensorAugmentation:
    """Per-batch tensor augmentation: random crop after zero padding, optional horizontal flip."""

    crop_padding: int = 0
    horizontal_flip: bool = False


@dataclass
class TensorSplit:
    """A split held in memory as uint8 images [N, C, H, W]; augmented, resized (when `resize` says a
    size, e.g. a pretrained model's input) and normalised per batch."""

    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augmentation: TensorAugmentation = field(default_factory=TensorAugmentation)
    resize: tuple[int, int] | None = None  # (height, width) after augmentation; None: as stored
    interpolation: str = "bilinear"  # the resize's mode: "bilinear", "bicubic" or "nearest"

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError("TensorSplit images must be uint8 [N, C, H, W]")
        if len(self.images) != len(self.labels):
            raise ValueError("TensorSplit needs one label per image")
        self.labels = self.labels.long()
        self._device_cache: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, index_batches: Sequence[tuple[int, torch.Tensor]], *, train: bool, device: torch.device
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Nothing crosses from the device to the host: each batch copies only its indices and its
        augmentation draws to the device, without waiting for it."""
        images, labels = self._on(device)
        mean = torch.tensor(self.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, -1, 1, 1)
        for batch_seed, indices in index_batches:
            indices = indices.to(device, non_blocking=True)
            batch = images[indices].float().div_(255.0)
            if train:
                generator = torch.Generator().manual_seed(batch_seed)
                batch = augment(batch, self.augmentation, generator)
            if self.resize is not None:
                batch = resized(batch, self.resize, self.interpolation)
            yield (batch - mean) / std, labels[indices]

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels on `device`, copied there once."""
        if device not in self._device_cache:
            self._device_cache[device] = (self.images.to(device), self.labels.to(device))
        return self._device_cache[device]


def resized(batch: torch.Tensor, size: tuple[int, int], interpolation: str) -> torch.Tensor:
    """Images in [0, 1] resized to `size` (antialiased when shrinking), kept in [0, 1] (bicubic
    overshoots at edges)."""
    smooth = interpolation in ("bilinear", "bicubic")
    batch = torch.nn.functional.interpolate(
        batch, size=size, mode=interpolation, antialias=smooth, **({"align_corners": False} if smooth else {})
    )
    return batch.clamp_(0.0, 1.0)


def augment(
    batch: torch.Tensor, augmentation: TensorAugmentation, generator: torch.Generator
) -> torch.Tensor:
    """Random crop with zero padding and random horizontal flip, drawn from `generator` (on CPU) and
    copied to the batch's device in one copy that does not wait for the device."""
    size, _, height, width = batch.shape
    padding = augmentation.crop_padding
    draws = []  # the crop offsets (rows, columns), then the flips, drawn in this order
    if padding:
        draws += [torch.randint(0, 2 * padding + 1, (size,), generator=generator) for _ in range(2)]
    if augmentation.horizontal_flip:
        draws.append((torch.rand(size, generator=generator) < 0.5).long())
    if not draws:
        return batch
    on_device = iter(torch.stack(draws).to(batch.device, non_blocking=True))
    if padding:
        offsets_y, offsets_x = next(on_device), next(on_device)
        padded = torch.nn.functional.pad(batch, (padding, padding, padding, padding))
        rows = offsets_y[:, None] + torch.arange(height, device=batch.device)[None, :]
        cols = offsets_x[:, None] + torch.arange(width, device=batch.device)[None, :]
        batch = padded[
            torch.arange(size, device=batch.device)[:, None, None, None],
            torch.arange(batch.shape[1], device=batch.device)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]
    if augmentation.horizontal_flip:
        flip = next(on_device).bool()
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    return batch


@dataclass
class LongTailedData:
    """A loaded long-tailed dataset: train/val/test splits and the training class counts."""

    name: str
    num_classes: int
    train: Split
    val: Split
    test: Split
    class_counts: list[int]  # training images per class, ordered by class index
    in_chans: int
    shot_rule: ShotRule = field(default_factory=ShotRule)
    class_names: list[str] | None = None
    lists_digest: str | None = None  # custom split lists: a short sha256 of their bytes, naming the variant


@dataclass(frozen=True)
class DataOptions:
    """How to load a dataset: where its files are and the long-tail construction's parameters."""

    data_root: Path | None = None
    imbalance_ratio: float | None = None  # None: the dataset's default
    data_seed: int = 0
    download: bool = False
    num_workers: int = 0  # DataLoader workers of file-backed datasets (0: the main process)
    custom_lists: bool = False  # split lists other than the published ones: their checksums are not compared


@dataclass(frozen=True)
class Published:
    """What the literature publishes for a dataset, for `lt-bench data check` to compare against."""

    num_classes: int
    split_sizes: dict[str, int | None]  # images per split; None where nothing is published
    shot_groups: tuple[int, int, int] | None = None  # many / medium / few class numbers
    # split → (list file, accepted git blob ids)
    list_files: dict[str, tuple[Path, tuple[str, ...]]] = field(default_factory=dict)
    source: str = ""


class DatasetSource(ABC):
    """A named dataset: its description, default recipe and loader."""

    name: ClassVar[str]
    description: ClassVar[str]
    recipe: ClassVar[Recipe]
    default_imbalance_ratio: ClassVar[float | None] = None  # None: the split is fixed by list files
    takes_data_root: ClassVar[bool] = True  # False: the files ship inside installed packages
    validation_is_test: ClassVar[bool] = False  # True: no labelled split besides the test images

    def load(self, options: DataOptions) -> LongTailedData:
        """The splits, after refusing (or warning about) options that do not apply to this dataset."""
        lists_fix_split = self.default_imbalance_ratio is None
        if lists_fix_split and options.imbalance_ratio is not None:
            raise UserError(
                f"--imbalance-ratio does not apply to {self.name}: its split lists fix the long tail; "
                f"drop the option"
            )
        if not self.takes_data_root and options.data_root is not None:
            warnings.warn(
                f"--data-root is ignored: {self.name} ships inside installed packages", stacklevel=2
            )
        if not lists_fix_split and options.custom_lists:
            warnings.warn(f"--custom-lists is ignored: {self.name} has no split lists", stacklevel=2)
        return self.read(options)

    @abstractmethod
    def read(self, options: DataOptions) -> LongTailedData:
        """Read the splits; raise UserError saying what to put where when files are missing."""

    def published(self, options: DataOptions) -> Published | None:
        """The published sizes the loaded data must match; None when there are none."""
        return None

    def split_list_files(self, root: Path) -> tuple[Path, ...]:
        """The files under `root` that fix the splits (none for datasets built in memory)."""
        return ()


DATASETS: Registry[type[DatasetSource]] = Registry("dataset", builtin_package="lt_bench.data.sources")
