"""Where and in which precision training runs.

``device: auto`` picks CUDA, then Apple's MPS, then the CPU. ``precision: auto`` is bf16
autocast on CUDA devices that support it and fp32 elsewhere; fp16 adds a gradient scaler.
Autocast covers the encoder's forward pass only: the losses cast to float32 themselves.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from cltt.errors import CLTTError


@dataclass(frozen=True)
class Placement:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None = full fp32
    channels_last: bool

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]

    def autocast(self):
        """Context manager for the forward pass."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled for fp16 only."""
        return torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype is torch.float16)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for ``train.device`` (``auto|cpu|cuda|mps``)."""
    if name == "auto":
        if torch.cuda.is_available():
            name = "cuda"
        elif torch.backends.mps.is_available():
            name = "mps"
        else:
            name = "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise CLTTError("train.device=cuda but no CUDA device is visible; use train.device=auto or cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not torch.backends.mps.is_available():
        raise CLTTError("train.device=mps but this machine has no Apple MPS device; use train.device=auto or cpu")
    return torch.device(name)


def resolve_placement(device_name: str, precision: str, channels_last: bool, local_rank: int = 0) -> Placement:
    """Device, autocast dtype and memory format from the recipe's train section."""
    device = resolve_device(device_name, local_rank)
    on_cuda = device.type == "cuda"
    if precision == "auto":
        dtype = torch.bfloat16 if on_cuda and torch.cuda.is_bf16_supported() else None
    elif precision == "fp32":
        dtype = None
    elif precision == "bf16":
        if on_cuda and not torch.cuda.is_bf16_supported():
            raise CLTTError("train.precision=bf16 but this GPU does not support bfloat16; use fp16 or auto")
        dtype = torch.bfloat16
    else:
        if device.type == "cpu":
            raise CLTTError("train.precision=fp16 needs a GPU; on the CPU use fp32 or bf16")
        dtype = torch.float16
    return Placement(device, dtype, channels_last and on_cuda)

