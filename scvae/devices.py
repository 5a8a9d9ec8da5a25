"""Choosing the torch device: one rule for inference and training."""

from __future__ import annotations

import re

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


class DeviceError(ValueError):
    """A device that does not exist here or is not a device name."""


def check_device_name(requested: str) -> str:
    """`requested` if it names a device kind this library knows (no torch import), else DeviceError."""
    if requested in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", requested or ""):
        return requested
    raise DeviceError(f"device {requested!r}: choose one of {', '.join(DEVICE_CHOICES)}")


def pick_device(requested: str = "auto", local_rank: int = 0):
    """The torch.device for `requested`: auto picks this process's GPU (LOCAL_RANK) when one is
    visible, else the CPU. Asking for CUDA without a visible GPU is a DeviceError, not a silent CPU run."""
    import torch

    check_device_name(requested)
    if requested == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device {requested!r}: no CUDA GPU is visible to torch; choose cpu")
    if requested == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(requested)
