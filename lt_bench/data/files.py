"""Image files on disk as a Split: DataLoader workers, pinned memory, persistent workers, prefetching.

Each split keeps one DataLoader per mode (train / eval) for the whole run, so persistent workers
survive from epoch to epoch; every epoch only swaps the index batches its batch sampler yields.
Training augmentation is seeded per image from the batch seed, so it does not depend on the
number of workers and a resumed run draws the same crops.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, default_collate

from lt_bench.data.base import DataOptions
from lt_bench.data.split_lists import Origins, SplitList, resolve_images
from lt_bench.distributed import environment_count
from lt_bench.errors import UnreadableImage, UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Transform = Callable[[Image.Image], torch.Tensor]
PREFETCH_BATCHES = 4  # batches each worker loads ahead (DataLoader's prefetch_factor; its default is 2)


def imagenet_transforms(
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    *,
    color_jitter: bool = True,
    size: tuple[int, int] = (224, 224),
    crop_pct: float = 0.875,
    interpolation: str = "bilinear",
) -> tuple[Transform, Transform]:
    """(train, eval) transforms of the ImageNet-LT recipe (OLTR / classifier-balancing):
    RandomResizedCrop 224, flip, ColorJitter(0.4, 0.4, 0.4, 0); eval Resize 256, CenterCrop 224.
    Another `size` / `crop_pct` (eval resizes to size / crop_pct first) / `interpolation` fits a
    pretrained model's input, as timm's eval transform does."""
    from torchvision import transforms  # imported here: importing torchvision takes seconds

    mode = transforms.InterpolationMode(interpolation)
    height, width = size
    scale = (
        math.floor(height / crop_pct) if height == width else tuple(math.floor(s / crop_pct) for s in size)
    )
    jitter = [transforms.ColorJitter(0.4, 0.4, 0.4, 0.0)] if color_jitter else []
    normalize = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    crop = height if height == width else size
    train = transforms.Compose(
        [
            transforms.RandomResizedCrop(crop, interpolation=mode),
            transforms.RandomHorizontalFlip(),
            *jitter,
            *normalize,
        ]
    )
    evaluation = transforms.Compose(
        [transforms.Resize(scale, interpolation=mode), transforms.CenterCrop(crop), *normalize]
    )
    return train, evaluation


def required_root(options: DataOptions, where: str) -> Path:
    """The --data-root of a dataset that lives in files; a UserError saying `where` without one."""
    if options.data_root is None:
        raise UserError(where)
    return options.data_root


def default_num_workers() -> int:
    """Loader workers when the user does not say: the CPUs this process may use. Those are its
    affinity, at most SLURM's CPUs per task, or shared with the other processes on the node under
    torchrun."""
    usable = len(os.sched_getaffinity(0))
    if "SLURM_CPUS_PER_TASK" in os.environ:
        return max(1, min(usable, environment_count("SLURM_CPUS_PER_TASK", usable)))
    return max(1, usable // environment_count("LOCAL_WORLD_SIZE", 1))


def decode_rgb(path: str, origin: str) -> Image.Image:
    """The image at `path` fully decoded to RGB; UnreadableImage naming the file and `origin` (its
    list file and entry) when it cannot be opened or decoded."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = "not an image format PIL reads" if isinstance(error, UnidentifiedImageError) else error
        raise UnreadableImage(
            f"{path} ({origin}) cannot be decoded: {' '.join(str(reason).split())}; replace the file, "
            f"or drop its entry from the list and pass --custom-lists"
        ) from error


class _ImageFiles(Dataset):
    """Items are (seed, index) pairs: the image at `index`, transformed under `seed` when seeded.

    An image that cannot be decoded comes back as its UnreadableImage (not raised): DataLoader workers
    would wrap a raised one in a traceback, so `FileSplit.batches` raises it in the main process.
    """

    def __init__(
        self, paths: Sequence[str], labels: torch.Tensor, origins: Origins, transform: Transform, seeded: bool
    ) -> None:
        self.paths, self.labels, self.origins = paths, labels, origins
        self.transform, self.seeded = transform, seeded

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor] | UnreadableImage:
        seed, index = item
        try:
            rgb = decode_rgb(self.paths[index], self.origins.of(index))
        except UnreadableImage as error:
            return error
        if not self.seeded:
            return self.transform(rgb), self.labels[index]
        with _seeded_cpu_generator(seed):  # torchvision transforms draw from torch's global CPU RNG
            return self.transform(rgb), self.labels[index]


@contextmanager
def _seeded_cpu_generator(seed: int) -> Iterator[None]:
    """torch's global CPU generator seeded with `seed` inside the block and restored after it. Only
    the CPU generator: `torch.manual_seed` also queues a CUDA seeding that records a stack trace on
    each call (about 1 ms, more than decoding a small JPEG)."""
    state = torch.get_rng_state()
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(state)


def _collate(items: list[tuple[torch.Tensor, torch.Tensor] | UnreadableImage]) -> Any:
    """The batch, or the batch's first UnreadableImage."""
    unreadable = next((item for item in items if isinstance(item, UnreadableImage)), None)
    return default_collate(items) if unreadable is None else unreadable


class _EpochBatches:
    """A batch sampler whose batches are replaced before each pass (the loader itself is kept)."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, int]]] = []

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _image_seed(batch_seed: int, position: int) -> int:
    return (batch_seed + position * 0x9E3779B97F4A7C15) % 2**63


class FileSplit:
    """A split of image files with labels; batches come from a DataLoader over the given indices."""

    def __init__(
        self,
        paths: Sequence[str],
        labels: torch.Tensor,
        origins: Origins,
        train_transform: Transform,
        eval_transform: Transform,
        *,
        num_workers: int = 0,
    ) -> None:
        if len(paths) != len(labels):
            raise ValueError("FileSplit needs one label per image")
        self.paths = list(paths)
        self.labels = labels.long()
        self.origins = origins
        self.transforms = {True: train_transform, False: eval_transform}
        self.num_workers = num_workers
        self._loaders: dict[tuple[bool, str], tuple[DataLoader, _EpochBatches]] = {}

    @classmethod
    def under(
        cls,
        root: Path,
        split_list: SplitList,
        *,
        layouts: Sequence[Callable[[str], str]],
        transforms: tuple[Transform, Transform],
        num_workers: int,
    ) -> FileSplit:
        """The images of `split_list` under `root` (each checked to exist, see `resolve_images`)."""
        paths = resolve_images(root, split_list, layouts)
        labels = torch.from_numpy(split_list.labels)
        return cls(paths, labels, split_list.origins, *transforms, num_workers=num_workers)

    def with_transforms(self, train_transform: Transform, eval_transform: Transform) -> FileSplit:
        """The same images and labels under other transforms (e.g. a pretrained model's input)."""
        return FileSplit(
            self.paths,
            self.labels,
            self.origins,
            train_transform,
            eval_transform,
            num_workers=self.num_workers,
        )

    def __len__(self) -> int:
        return len(self.labels)

    def batches(
        self, index_batches: Sequence[tuple[int, torch.Tensor]], *, train: bool, device: torch.device
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """As `Split.batches`; an image that cannot be decoded raises UnreadableImage (one line)."""
        loader, sampler = self._loader(train, device)
        sampler.batches = [
            [(_image_seed(batch_seed, position), int(index)) for position, index in enumerate(indices)]
            for batch_seed, indices in index_batches
        ]
        for batch in loader:
            if isinstance(batch, UnreadableImage):
                raise batch
            images, labels = batch
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    def _loader(self, train: bool, device: torch.device) -> tuple[DataLoader, _EpochBatches]:
        key = (train, device.type)
        if key not in self._loaders:
            sampler = _EpochBatches()
            dataset = _ImageFiles(self.paths, self.labels, self.origins, self.transforms[train], seeded=train)
            loader = DataLoader(
                dataset,
                batch_sampler=sampler,
                num_workers=self.num_workers,
                collate_fn=_collate,
                pin_memory=device.type == "cuda",
                persistent_workers=self.num_workers > 0,
                prefetch_factor=PREFETCH_BATCHES if self.num_workers > 0 else None,
            )
            self._loaders[key] = (loader, sampler)
        return self._loaders[key]
