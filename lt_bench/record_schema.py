"""The schema of a run record ("lt-bench/record/1"), checked whenever a record is read: types, ranges
(accuracies are fractions in [0, 1]; a boolean or null is not a number) and per-image fields that
agree with the test set (one prediction per test image, class indices in range). A record that
breaks it is named and skipped by every results command, never tabulated as it is."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lt_bench.config import RunConfig
from lt_bench.test_shift import SHIFTS, shifted_indices

SCHEMA = "lt-bench/record/1"
REQUIRED_FIELDS = ("schema", "status", "run_id", "method", "dataset", "backbone", "seed", "config", "metrics")
STATUSES = ("finished", "failed", "pruned")  # pruned: a tuning trial stopped early
DETECTION_TASK = "instance_segmentation"  # a detection record's `task`
FRACTIONS = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "APr",
    "APc",
    "APf",
    "box_AP",
    "top1",
    "top5",
    "many",
    "medium",
    "few",
    "balanced_accuracy",
    "macro_f1",
    "ece",
)
COST_FIELDS = ("total_parameters", "trainable_parameters", "flops_per_image", "images_seen", "device_hours",
               "wall_time_s", "devices")  # fmt: skip
PRETRAINING_WEIGHTS = ("none", "timm", "file")
# What the test-shift leaderboard, the report and the export read besides the metrics: all or none.
PER_IMAGE_FIELDS = ("class_counts", "test_labels", "test_predictions", "per_class_accuracy", "shot_groups",
                    "knobs", "calibration")  # fmt: skip
# Fields of a record the results commands read where present (older records lack some): their types.
OPTIONAL_FIELDS: dict[str, Any] = {
    "data_seed": int,
    "world_size": int,
    "precision": str,
    "git_commit": str | None,
    "finished_at": str | None,
    "evaluated_from": str | None,
    "error": str,
    "kept_epoch": dict | None,
    "first_stage": dict | None,
    "method_code": dict | None,
    "pretraining": dict | None,
    "cost": dict | None,
    "curve": list,
    "test_adaptation": dict,
    "task": str,
    "arrays": dict,  # the .npz beside a compact record (lt_bench.record_arrays)
}


class RecordInvalid(ValueError):
    """A record that breaks the schema; the message names the field and what is wrong with it."""


def check_record(record: Any) -> None:
    """Raise RecordInvalid naming the first field of `record` that breaks the schema."""
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise RecordInvalid(f"not an lt-bench record (expected schema {_shown(SCHEMA)})")
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        raise RecordInvalid(f"record lacks {', '.join(missing)}")
    _require(record["status"] in STATUSES, "status", f"is {_shown(record['status'])}, not one of {STATUSES}")
    for name in ("run_id", "method", "dataset", "backbone"):
        _require(isinstance(record[name], str) and record[name] != "", name, "is not a non-empty string")
    _require(_is_integer(record["seed"]), "seed", f"is {_shown(record['seed'])}, not an integer")
    for name, kind in OPTIONAL_FIELDS.items():
        if name in record:
            _require(_matches(record[name], kind), name, f"is {_shown(record[name])}, not {_type_name(kind)}")
    if record.get("kept_epoch") is not None:
        epoch = record["kept_epoch"].get("epoch")
        _require(
            epoch is None or _is_integer(epoch), "kept_epoch.epoch", f"is {_shown(epoch)}, not an integer"
        )
    if record.get("method_code") is not None:
        digest = record["method_code"].get("digest")
        _require(
            digest is None or isinstance(digest, str),
            "method_code.digest",
            f"is {_shown(digest)}, not a string",
        )
    _check_config(record["config"])
    _require(isinstance(record["metrics"], dict), "metrics", "is not an object")
    if record["status"] == "finished":
        _check_finished(record)


def _check_config(config: Any) -> None:
    """Each field of RunConfig the config holds has that field's type; epochs is a count."""
    _require(isinstance(config, dict), "config", "is not an object")
    hints = typing.get_type_hints(RunConfig)
    for spec in dataclasses.fields(RunConfig):
        if spec.name in config:
            value, hint = config[spec.name], hints[spec.name]
            _require(
                _matches(value, hint), f"config.{spec.name}", f"is {_shown(value)}, not {_type_name(hint)}"
            )
    _require("epochs" in config and config["epochs"] >= 0, "config.epochs", "is missing or negative")


def _check_finished(record: dict[str, Any]) -> None:
    """The numbers every table of a finished record reads, and its per-image fields where it has them."""
    for split in ("test", "val"):
        if split in record["metrics"] or split == "test":
            _check_metrics(record["metrics"].get(split), f"metrics.{split}")
    if record.get("task") == DETECTION_TASK:  # AP, AP50, APr, … (lt_bench.detection): no accuracies
        _require(_is_number(record["metrics"]["test"].get("AP")), "metrics.test.AP", "is not a number")
        return
    _require(_is_number(record["metrics"]["test"].get("top1")), "metrics.test.top1", "is not a number")
    _check_blocks(record)
    present = [name for name in PER_IMAGE_FIELDS if name in record]
    if present and not _arrays_not_read(
        record
    ):  # a leaderboard row needs none of them; per-image commands skip a record without
        missing = [name for name in PER_IMAGE_FIELDS if name not in record]
        _require(not missing, ", ".join(missing), f"missing, though the record has {', '.join(present)}")
        _check_per_image(record)


def is_detection(record: Mapping[str, Any]) -> bool:
    """Whether `record` is an instance segmentation run's (AP per category, no per-image predictions)."""
    return record.get("task") == DETECTION_TASK


def _arrays_not_read(record: Mapping[str, Any]) -> bool:
    """A compact record read without its .npz: its per-image fields are checked when they are read."""
    return "arrays" in record and "test_labels" not in record


def has_per_image_fields(record: Mapping[str, Any]) -> bool:
    """Whether a (checked) finished record holds its per-image predictions: older records do not."""
    return all(name in record for name in PER_IMAGE_FIELDS)


def _check_blocks(record: dict[str, Any]) -> None:
    """Cost, training curve and pretraining, where a record has them (OPTIONAL_FIELDS: their types)."""
    for name in COST_FIELDS if record.get("cost") is not None else ():  # a cost block has them all
        value = record["cost"].get(name)
        _require(_is_number(value) and value >= 0, f"cost.{name}", f"is {_shown(value)}, not a number ≥ 0")
    for point in record.get("curve", []):
        _require(
            isinstance(point, dict) and _is_integer(point.get("epoch"))
            and all(value is None or _is_number(value) for value in point.values()),
            "curve",
            f"has an entry {_shown(point)} that is not an epoch with numbers",
        )  # fmt: skip
    if record.get("pretraining") is not None:
        weights = record["pretraining"].get("weights")
        _require(
            weights in PRETRAINING_WEIGHTS, "pretraining.weights", f"is not one of {PRETRAINING_WEIGHTS}"
        )
        if weights == "file":
            digest = record["pretraining"].get("digest")
            _require(isinstance(digest, str), "pretraining.digest", "is not a string")


def _check_per_image(record: dict[str, Any]) -> None:
    """Per-image predictions against the test set, per-class numbers, knobs and calibration bins."""
    class_counts = record["class_counts"]
    _require(
        isinstance(class_counts, list)
        and class_counts
        and all(_is_integer(c) and c >= 0 for c in class_counts),
        "class_counts",
        "is not a non-empty list of image counts",
    )
    classes = len(class_counts)
    labels = _class_indices(record, "test_labels", classes)
    predictions = _class_indices(record, "test_predictions", classes)
    _require(labels, "test_labels", "is empty")
    _require(
        len(predictions) == len(labels),
        "test_predictions",
        f"holds {len(predictions)} predictions for {len(labels)} test images",
    )
    per_class = record["per_class_accuracy"]
    _require(
        isinstance(per_class, list)
        and len(per_class) == classes
        and all(map(_is_fraction_or_none, per_class)),
        "per_class_accuracy",
        f"is not {classes} accuracies in [0, 1] (or null), one per class",
    )
    groups = record["shot_groups"]
    _require(isinstance(groups, dict), "shot_groups", "is not an object")
    for name in groups:
        _class_indices(groups, name, classes, prefix="shot_groups.")
    _check_knobs(record["knobs"])
    _check_calibration(record["calibration"])
    if "test_adaptation" in record:
        _check_adaptation(record, classes, labels)


def _check_calibration(calibration: Any) -> None:
    _require(isinstance(calibration, dict), "calibration", "is not an object")
    lengths = set()
    for name, valid in (("accuracy", _is_fraction_or_none), ("confidence", _is_fraction_or_none),
                        ("count", lambda value: _is_integer(value) and value >= 0)):  # fmt: skip
        values = calibration.get(name)
        _require(isinstance(values, list) and all(map(valid, values)), f"calibration.{name}", "is malformed")
        lengths.add(len(values))
    _require(len(lengths) == 1, "calibration", "has lists of different lengths")


def _check_knobs(knobs: Any) -> None:
    """The selected knobs, the candidates searched and the validation accuracy of each."""
    _require(isinstance(knobs, dict), "knobs", "is not an object")
    _require(_numbers_by_name(knobs.get("selected")), "knobs.selected", "is not an object of numbers")
    candidates = knobs.get("candidates")
    _require(
        isinstance(candidates, dict)
        and all(isinstance(values, list) and all(map(_is_number, values)) for values in candidates.values()),
        "knobs.candidates",
        "is not an object of lists of numbers",
    )
    validation = knobs.get("validation")
    _require(isinstance(validation, list), "knobs.validation", "is not a list")
    for entry in validation:
        _require(
            isinstance(entry, dict)
            and _numbers_by_name(entry.get("knobs"))
            and all(_is_fraction_or_none(entry.get(name)) for name in FRACTIONS),
            "knobs.validation",
            f"has an entry {_shown(entry)} that is not knobs with accuracies in [0, 1]",
        )


def _check_adaptation(record: dict[str, Any], classes: int, labels: list[int]) -> None:
    """A test-time-adapting method's predictions on each shifted test set: one per image it keeps."""
    shifts = record["test_adaptation"].get("shifts")
    _require(isinstance(shifts, dict), "test_adaptation.shifts", "is not an object")
    by_name = {shift.name: shift for shift in SHIFTS}
    for name, adapted in shifts.items():
        field = f"test_adaptation.shifts.{name}"
        _require(
            name in by_name and isinstance(adapted, dict), field, "is not a shift of lt_bench.test_shift"
        )
        predictions = _class_indices(adapted, "predictions", classes, prefix=f"{field}.")
        kept = shifted_indices(
            np.asarray(labels, dtype=np.int64),
            record["class_counts"],
            by_name[name],
            record.get("data_seed", 0),
        )
        _require(
            len(predictions) == len(kept),
            f"{field}.predictions",
            f"holds {len(predictions)} predictions for the {len(kept)} images of that shifted test set",
        )


def _check_metrics(metrics: Any, field: str) -> None:
    """Accuracies (and ECE) are fractions in [0, 1], NLL and any other metric a finite number; null
    where a metric does not exist (no few-shot classes)."""
    _require(isinstance(metrics, dict), field, "is not an object")
    for name, value in metrics.items():
        if value is None:
            continue
        _require(_is_number(value), f"{field}.{name}", f"is {_shown(value)}, not a finite number (or null)")
        if name in FRACTIONS:
            _require(
                0 <= value <= 1,
                f"{field}.{name}",
                f"is {_shown(value)}, outside [0, 1] (accuracies are fractions)",
            )
        else:
            _require(value >= 0, f"{field}.{name}", f"is {_shown(value)}, below 0")


def _class_indices(holder: Mapping[str, Any], name: str, classes: int, prefix: str = "") -> list[int]:
    """`holder[name]` as a list of class indices in 0..classes-1."""
    values = holder.get(name)
    _require(isinstance(values, list), f"{prefix}{name}", "is missing or not a list")
    bad = next((value for value in values if not (_is_integer(value) and 0 <= value < classes)), None)
    _require(bad is None, f"{prefix}{name}", f"holds {_shown(bad)}, not a class index in 0..{classes - 1}")
    return values


def _numbers_by_name(values: Any) -> bool:
    return isinstance(values, dict) and all(map(_is_number, values.values()))


def _is_number(value: Any) -> bool:
    """A finite int or float; JSON's true / false are not numbers here."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_fraction_or_none(value: Any) -> bool:
    return value is None or (_is_number(value) and 0 <= value <= 1)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a RunConfig annotation (tuples are JSON lists; an int is a float)."""
    if hint is typing.Any:
        return True
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, argument) for argument in arguments)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, list) and all(_matches(item, arguments[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(_matches(item, arguments[1]) for item in value.values())
    checks: dict[Any, Callable[[Any], bool]] = {
        bool: lambda item: isinstance(item, bool),
        int: _is_integer,
        float: _is_number,
        str: lambda item: isinstance(item, str),
        dict: lambda item: isinstance(item, dict),
        list: lambda item: isinstance(item, list),
    }
    return checks[hint](value)


def _shown(value: Any, width: int = 60) -> str:
    """`value`'s repr, cut to `width` characters: a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)


def _require(condition: Any, field: str, problem: str) -> None:
    if not condition:
        raise RecordInvalid(f"{field} {problem}")
