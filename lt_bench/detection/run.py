"""One instance segmentation run: train Mask R-CNN with a method's box head, pick its knobs on validation
AP, evaluate LVIS-style on test, write the record. Checkpoints every epoch; a rerun resumes exactly."""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from lt_bench.checkpoint import load_checkpoint, save_checkpoint
from lt_bench.data import samplers
from lt_bench.detection.data import (
    DETECTION_DATASETS,
    DetectionData,
    DetectionSplit,
    images_per_category,
    instance_targets,
)
from lt_bench.detection.engine import DetectorConfig, build_detector
from lt_bench.detection.evaluation import evaluate_lvis
from lt_bench.errors import UserError
from lt_bench.method import METHODS, Method, MethodContext
from lt_bench.method_code import method_code
from lt_bench.record_schema import DETECTION_TASK
from lt_bench.records import SCHEMA, environment, now, write_record
from lt_bench.training import derived_seed

KNOB_METRIC = "AP"  # validation mask AP picks the test-time knobs


@dataclass(frozen=True)
class DetectionRunConfig:
    """A detection run, fully resolved: the dataset's recipe and detector with the user's overrides."""

    method: str
    dataset: str
    detector: DetectorConfig
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float = 1e-4
    momentum: float = 0.9
    milestones: tuple[int, ...] = ()  # 0-based epochs from which the rate is multiplied by 0.1
    warmup_steps: int = 0  # linear warm-up from lr/1000 (mmdetection / Detectron2 start 0.001)
    seed: int = 0
    data_seed: int = 0
    data_root: str | None = None
    output: str = "results"
    threads: int = 1
    knobs: dict[str, float] = field(default_factory=dict)  # fixed knobs instead of the validation search

    @property
    def run_id(self) -> str:
        detector = self.detector
        return (
            f"{self.method}-{self.dataset}-{detector.backbone}-d{detector.representation_size}-{self.epochs}ep-"
            f"b{self.batch_size}-seed{self.seed}"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolved_config(method: str, dataset: str, **overrides: Any) -> DetectionRunConfig:
    """The dataset's recipe for `method` with every non-None override applied."""
    recipe = DETECTION_DATASETS.get(dataset).recipe
    detector = replace(DetectorConfig(), **recipe.detector)
    if overrides.get("backbone") is not None:
        detector = replace(detector, backbone=overrides.pop("backbone"))
    overrides.pop("backbone", None)
    base = DetectionRunConfig(
        method=method,
        dataset=dataset,
        detector=detector,
        epochs=recipe.epochs,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        weight_decay=recipe.weight_decay,
        milestones=recipe.milestones,
        warmup_steps=recipe.warmup_steps,
    )
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def _normalised(image: torch.Tensor) -> torch.Tensor:
    return image.float() / 255.0


def _step_batches(order: torch.Tensor, batch_size: int) -> list[list[int]]:
    return [order[i : i + batch_size].tolist() for i in range(0, len(order) - batch_size + 1, batch_size)]


def epoch_order(method: Method, split: DetectionSplit, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's image indices: the method's repeat factors (stochastically rounded) or each image once."""
    generator = torch.Generator().manual_seed(derived_seed(seed, epoch))
    categories = [
        {a["category_id"] for a in split.annotations_by_image.get(entry["id"], [])}
        for entry in split.ground_truth["images"]
    ]
    factors = method.image_repeat_factors(categories)
    if factors is None:
        return torch.randperm(len(split), generator=generator)
    return samplers.repeated(torch.tensor(factors), generator)


def _learning_rate(config: DetectionRunConfig, epoch: int, step: int) -> float:
    rate = config.lr * 0.1 ** sum(epoch >= m for m in config.milestones)
    if epoch == 0 and step < config.warmup_steps:
        rate *= 0.001 + (1 - 0.001) * step / config.warmup_steps
    return rate


def train_detector(
    config: DetectionRunConfig, model: torch.nn.Module, method: Method, data: DetectionData, checkpoint: Path
) -> list[dict[str, float]]:
    """SGD over the epochs, resuming from `checkpoint`; each step seeds the global RNG (the RPN's and RoI
    sampler's draws) from (seed, epoch, step), so a resumed run takes the same steps. The loss curve."""
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    start, curve = 0, []
    state = load_checkpoint(checkpoint)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        method.load_state_dict(state["method"])
        start, curve = state["epoch"], state["curve"]
    category_ids = [c["id"] for c in data.categories]
    for epoch in range(start, config.epochs):
        model.train()
        totals: dict[str, float] = {}
        batches = _step_batches(epoch_order(method, data.train, config.seed, epoch), config.batch_size)
        for step, indices in enumerate(batches):
            torch.manual_seed(derived_seed(config.seed, epoch, step))
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(config, epoch, step)
            images = [_normalised(data.train.image(i)) for i in indices]
            targets = [instance_targets(data.train, i, category_ids) for i in indices]
            losses = model(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise UserError(f"the loss is {loss.item()} at epoch {epoch} step {step}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for name, value in losses.items():
                totals[name] = totals.get(name, 0.0) + value.item() / len(batches)
        curve.append({"epoch": epoch + 1, **{k: round(v, 6) for k, v in totals.items()}})
        save_checkpoint(
            checkpoint,
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "method": method.state_dict(),
             "epoch": epoch + 1, "curve": curve, "config": config.to_json()},
        )  # fmt: skip
    return curve


@torch.no_grad()
def detect(
    model: torch.nn.Module, split: DetectionSplit, category_ids: list[int]
) -> tuple[list[dict], list[dict]]:
    """COCO-format segmentation and box results of every image of `split`."""
    from faster_coco_eval.core import mask as mask_api

    model.eval()
    masks_out, boxes_out = [], []
    for index, entry in enumerate(split.ground_truth["images"]):
        output = model([_normalised(split.image(index))])[0]
        binary = (output["masks"][:, 0] > 0.5).to(torch.uint8).numpy()
        for k, (box, score, label) in enumerate(
            zip(output["boxes"], output["scores"], output["labels"], strict=True)
        ):
            x1, y1, x2, y2 = box.tolist()
            common = {
                "image_id": entry["id"],
                "category_id": category_ids[int(label) - 1],
                "score": float(score),
            }
            rle = mask_api.encode(binary[k].copy(order="F"))
            rle["counts"] = rle["counts"].decode("ascii")
            masks_out.append({**common, "segmentation": rle})
            boxes_out.append({**common, "bbox": [x1, y1, x2 - x1, y2 - y1]})
    return masks_out, boxes_out


def evaluate_split(model: torch.nn.Module, split: DetectionSplit, category_ids: list[int]) -> dict[str, Any]:
    """Mask metrics (AP … APf) and box AP of `split`."""
    masks, boxes = detect(model, split, category_ids)
    metrics = evaluate_lvis(split.ground_truth, masks, "segm")
    metrics["box_AP"] = evaluate_lvis(split.ground_truth, boxes, "bbox")["AP"]
    return metrics


def choose_knobs(
    model: torch.nn.Module, method: Method, data: DetectionData, config: DetectionRunConfig
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The knob values of the best validation mask AP (the first on ties), and every candidate's AP."""
    candidates = {**method.test_time_knobs(), **{k: (v,) for k, v in config.knobs.items()}}
    names = sorted(candidates)
    combinations = [
        dict(zip(names, values, strict=True)) for values in itertools.product(*(candidates[n] for n in names))
    ]
    if len(combinations) == 1:
        return combinations[0], []
    scored = []
    for knobs in combinations:
        model.roi_heads.knobs = knobs
        scored.append({**knobs, "val_AP": evaluate_split(model, data.val, data.category_ids)[KNOB_METRIC]})
    best = max(scored, key=lambda row: row["val_AP"] or 0.0)
    return {n: best[n] for n in names}, scored


def run_detection(config: DetectionRunConfig) -> dict[str, Any]:
    """Train (or resume) and evaluate `config`; write and return its record."""
    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    method_class = METHODS.get(config.method)
    if not method_class.supports_instance_segmentation:
        supported = sorted(n for n, m in METHODS.items() if m.supports_instance_segmentation)
        raise UserError(
            f"{config.method} has no instance segmentation hooks; choose one of {', '.join(supported)}"
        )
    source = DETECTION_DATASETS.get(config.dataset)()
    data = source.read(Path(config.data_root) if config.data_root else None, config.data_seed)
    image_counts = images_per_category(data.train.ground_truth)
    context = MethodContext(
        dataset=config.dataset,
        num_classes=len(data.categories),
        class_counts=tuple(image_counts[c] for c in data.category_ids),
        feature_dim=config.detector.representation_size,
        epochs=config.epochs,
        steps_per_epoch=len(data.train) // config.batch_size,
        base_lr=config.lr,
        lr_milestones=config.milestones,
    )
    method = method_class(context)
    torch.manual_seed(derived_seed(config.seed))
    mean, std = _pixel_statistics(data.train)
    model = build_detector(method, config.detector, len(data.categories), data.in_chans, mean, std)
    folder = Path(config.output) / "runs" / config.run_id
    curve = train_detector(config, model, method, data, folder / "checkpoint.pt")
    knobs, knob_curve = choose_knobs(model, method, data, config)
    model.roi_heads.knobs = knobs
    test = evaluate_split(model, data.test, data.category_ids)
    code = method_code(config.method)
    record = {
        "schema": SCHEMA,
        "status": "finished",
        "task": DETECTION_TASK,
        "run_id": config.run_id,
        "method": config.method,
        "dataset": config.dataset,
        "backbone": config.detector.backbone,
        "seed": config.seed,
        "data_seed": config.data_seed,
        "config": config.to_json(),
        "method_code": code,
        "categories": {c["name"]: {"frequency": c["frequency"], "train_images": image_counts[c["id"]]}
                       for c in data.categories},
        "knobs": {"selected": knobs, "validation": knob_curve},
        "metrics": {"test": test},
        "curve": curve,
        **environment("fp32"),
        "device": "cpu",
        "wall_time_s": round(time.perf_counter() - started, 3),
        "finished_at": now(),
    }  # fmt: skip
    write_record(config.output, record)
    return record


def _pixel_statistics(split: DetectionSplit) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of the first 64 training images, in [0, 1]."""
    images = torch.stack([_normalised(split.image(i)) for i in range(min(64, len(split)))])
    return images.mean(dim=(0, 2, 3)).tolist(), images.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
