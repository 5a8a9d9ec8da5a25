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


PRECISIONS = ("auto", "float32", "bfloat16")


def check_precision_name(requested: str) -> str:
    """`requested` if it is an inference precision this library knows (no torch import), else DeviceError."""
    if requested in PRECISIONS:
        return requested
    raise DeviceError(f"precision {requested!r}: choose one of {', '.join(PRECISIONS)}")


def native_bfloat16(device) -> bool:
    """Whether `device` computes bfloat16 convolutions natively: a CUDA GPU that supports it, or a CPU
    with AMX tiles or AVX-512 BF16 (where oneDNN runs them about twice as fast as float32; elsewhere
    bfloat16 is emulated and slower)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    try:
        return any(probe() for probe in probes if probe is not None)
    except RuntimeError:  # a build without the probes' backend: assume emulation
        return False


def pick_precision(requested: str, device) -> str:
    """The precision encoders run in on `device`: `auto` is bfloat16 where it is native (see
    native_bfloat16) and float32 elsewhere; either name is taken as given."""
    check_precision_name(requested)
    if requested != "auto":
        return requested
    return "bfloat16" if native_bfloat16(device) else "float32"
