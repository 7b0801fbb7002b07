"""A record's per-image and per-class arrays, kept in a binary file beside its JSON.

At iNaturalist size (8,142 classes, 24,426 test images) the labels, predictions and per-class
accuracies are most of a record's bytes, and only test-shift, the report, export and the bootstrap
read them. The JSON keeps configuration, metrics, knobs, cost and curves and names the `.npz` file
(with its sha256) that holds:

- `test_labels`, `test_predictions`: int32, one per test image, in split order;
- `per_class_accuracy`: float64 per class (NaN where the test split has none of that class);
- `class_counts`: int64 training images per class; `shot_group`: int8 per class (0 many, 1 medium,
  2 few);
- `adapted/<shift>`: int32 predictions of a test-time-adapted method on each shifted test set.

The `.npz` is written with fixed member times and order, so the same record gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

SHOT_GROUPS = ("many", "medium", "few")
PER_IMAGE = ("test_labels", "test_predictions")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip member can carry: no clock in the bytes


def has_arrays(record: dict[str, Any]) -> bool:
    """Whether `record` holds its arrays inline (as the runner builds it, or an older record)."""
    return all(name in record for name in PER_IMAGE)


def split_off(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """`record` without its arrays, and the arrays by member name."""
    kept = dict(record)
    arrays = {name: np.asarray(kept.pop(name), dtype=np.int32) for name in PER_IMAGE}
    if "per_class_accuracy" in kept:
        accuracy = [math.nan if value is None else value for value in kept.pop("per_class_accuracy")]
        arrays["per_class_accuracy"] = np.asarray(accuracy, dtype=np.float64)
    if "class_counts" in kept:
        arrays["class_counts"] = np.asarray(kept.pop("class_counts"), dtype=np.int64)
    if "shot_groups" in kept:
        arrays["shot_group"] = _group_codes(kept.pop("shot_groups"), len(arrays.get("class_counts", [])))
    adaptation = kept.get("test_adaptation")
    if adaptation and adaptation.get("shifts"):
        shifts = {}
        for shift, adapted in adaptation["shifts"].items():
            shifts[shift] = {key: value for key, value in adapted.items() if key != "predictions"}
            arrays[f"adapted/{shift}"] = np.asarray(adapted["predictions"], dtype=np.int32)
        kept["test_adaptation"] = {**adaptation, "shifts": shifts}
    return kept, arrays


def merged(record: dict[str, Any], arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """`record` with `arrays` back in the fields (and Python types) the runner wrote them as."""
    whole = dict(record)
    for name in PER_IMAGE:
        whole[name] = arrays[name].tolist()
    if "per_class_accuracy" in arrays:
        whole["per_class_accuracy"] = [
            None if math.isnan(value) else value for value in arrays["per_class_accuracy"].tolist()
        ]
    if "class_counts" in arrays:
        whole["class_counts"] = arrays["class_counts"].tolist()
    if "shot_group" in arrays:
        codes = arrays["shot_group"]
        whole["shot_groups"] = {
            group: np.flatnonzero(codes == code).tolist() for code, group in enumerate(SHOT_GROUPS)
        }
    shifts = {
        name.removeprefix("adapted/"): values
        for name, values in arrays.items()
        if name.startswith("adapted/")
    }
    if shifts:
        adaptation = whole["test_adaptation"]
        whole["test_adaptation"] = {
            **adaptation,
            "shifts": {
                shift: {**adaptation["shifts"][shift], "predictions": predictions.tolist()}
                for shift, predictions in shifts.items()
            },
        }
    return whole


def encoded(arrays: dict[str, np.ndarray]) -> bytes:
    """The `.npz` bytes of `arrays`: members in name order, fixed times, deflated."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(arrays):
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            array_bytes = io.BytesIO()
            np.lib.format.write_array(array_bytes, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            archive.writestr(member, array_bytes.getvalue())
    return buffer.getvalue()


def decoded(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of `.npz` bytes; ValueError when they are not a readable array file."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"not a readable array file ({error})") from error


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def arrays_path(record_file: Path, name: str) -> Path:
    """Where the arrays a record file names lie: beside it."""
    return record_file.with_name(name)


def _group_codes(groups: dict[str, list[int]], num_classes: int) -> np.ndarray:
    size = max([num_classes, *(index + 1 for classes in groups.values() for index in classes)])
    codes = np.full(size, -1, dtype=np.int8)
    for code, group in enumerate(SHOT_GROUPS):
        codes[groups.get(group, [])] = code
    return codes
