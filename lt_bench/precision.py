"""Mixed precision: `--precision auto|fp32|bf16|fp16`, resolved before a run so its id says what ran.

The backbone runs under `torch.autocast`; the head, the loss and every method's state stay in fp32
(see `LongTailClassifier.forward`). fp16 scales the loss with a `GradScaler`, whose state is checkpointed.
"""

from __future__ import annotations

import torch

from lt_bench.errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def auto_precision(device_type: str, native_bf16: bool) -> str:
    """What `auto` means: bf16 on a CUDA GPU that computes it natively (Ampere and newer), else fp32."""
    return "bf16" if device_type == "cuda" and native_bf16 else "fp32"


def resolve_precision(precision: str, device: str) -> str:
    """`precision` with `auto` resolved for `--device` on this machine."""
    if precision != "auto":
        return precision
    on_cuda = device.split(":")[0] in ("auto", "cuda") and torch.cuda.is_available()
    return auto_precision("cuda" if on_cuda else "cpu", on_cuda and native_bf16(torch.device("cuda")))


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 natively (emulated bf16 on older GPUs is slower than fp32)."""
    if device.type != "cuda":
        return True  # CPU autocast computes bf16 on every CPU torch supports
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported(including_emulation=False)


def check_precision(precision: str, device: torch.device) -> None:
    """A one-line UserError when `device` cannot run `precision` at speed."""
    if precision == "bf16" and not native_bf16(device):
        name = torch.cuda.get_device_name(device)
        raise UserError(f"the GPU {name} has no native bfloat16; pass --precision fp16 or --precision fp32")


def autocast(precision: str, device: torch.device) -> torch.autocast:
    """The autocast context of `precision` on `device` (disabled for fp32)."""
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES.get(precision), enabled=precision != "fp32")


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16's dynamic loss scaling (small gradients would underflow); a pass-through otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
