"""The `lt-bench run` command line that reproduces a record: every recipe field pinned explicitly,
so the command still reproduces the run after a recipe's defaults change."""

from __future__ import annotations

import shlex
from typing import Any

# Record config field → `lt-bench run` option, in the order the options are written.
VALUE_OPTIONS = (
    ("protocol", "--protocol"),
    ("backbone", "--backbone"),
    ("imbalance_ratio", "--imbalance-ratio"),
    ("epochs", "--epochs"),
    ("batch_size", "--batch-size"),
    ("lr", "--lr"),
    ("weight_decay", "--weight-decay"),
    ("momentum", "--momentum"),
    ("schedule", "--schedule"),
    ("warmup_epochs", "--warmup-epochs"),
    ("warmup_start", "--warmup-start"),
    ("lr_decay", "--lr-decay"),
    ("select", "--select"),
    ("precision", "--precision"),
    ("finetune", "--finetune"),
    ("peft", "--peft"),
    ("peft_rank", "--peft-rank"),
    ("test_crops", "--test-crops"),
    ("pretrained_file", "--pretrained-file"),
    ("pretraining_data", "--pretraining-data"),
    ("data_seed", "--data-seed"),
    ("threads", "--threads"),
    ("val_every", "--val-every"),
)


def run_command(record: dict[str, Any]) -> str:
    """`lt-bench run --method … --dataset … --seed …` and the record's resolved recipe as options."""
    config = record["config"]
    words = ["lt-bench", "run", "--method", record["method"], "--dataset", record["dataset"]]
    words += ["--seed", _text(record["seed"])]
    for field, option in VALUE_OPTIONS:
        if config.get(field) is not None:
            words += [option, _text(config[field])]
    if config.get("nesterov") is not None:
        words.append("--nesterov" if config["nesterov"] else "--no-nesterov")
    if config.get("milestones"):
        words += ["--milestones", *(_text(m) for m in config["milestones"])]
    if config.get("pretrained"):
        words.append("--pretrained")
    for name, value in sorted((config.get("knobs") or {}).items()):
        words += ["--knob", f"{name}={_text(value)}"]
    return shlex.join(words)


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
