"""How close training runs to the hardware: FLOPs per image, GPU peaks, model FLOPs utilisation.

MFU is nanoGPT's measure: the FLOPs the model needs per image (one forward and one backward
pass, counted once) times the images per second achieved, over the GPU's peak FLOP/s. It
counts only the work the model must do, so recomputation, idle waits for data and
communication all show up as lost utilisation.
"""

from __future__ import annotations

import copy

import torch

# Dense (no sparsity) bf16 tensor-core peaks per GPU from the vendors' data sheets, in FLOP/s.
# The first name contained in torch.cuda.get_device_name() wins, so longer names come first
# ("H100 PCIe" before "H100", "L40S" before "L4"). A GPU not here takes train.peak_flops.
PEAK_BF16_FLOPS = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H800", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L4", 121e12),
)


def table_peak_flops(device_name: str) -> float | None:
    """The bf16 dense peak of a GPU named like torch.cuda.get_device_name(), or None if not in the table."""
    for name, peak in PEAK_BF16_FLOPS:
        if name in device_name:
            return peak
    return None


def training_flops_per_image(model: torch.nn.Module, resolution: int) -> int:
    """FLOPs of one forward and backward pass of one image at `resolution`, as
    torch.utils.flop_counter.FlopCounterMode counts them (convolutions and matrix products;
    element-wise work is not counted, as in every MFU figure).

    The pass runs on a copy of the model, on its device, with the RNG state forked: the model's
    gradients and the random streams of the run (dropout) are left as they were, so a resumed
    run stays bit-identical whether or not this was measured.
    """
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    probe = copy.deepcopy(model)
    x = torch.zeros(1, probe.config.in_channels, resolution, resolution, device=device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        with FlopCounterMode(display=False) as counter:
            out = probe(x)
            probe.loss(x, out)["loss"].backward()
    del probe, out
    return int(counter.get_total_flops())


def utilisation(flops_per_image: float, images_per_s: float, peak_flops: float, devices: int = 1) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over the peak of all `devices` together."""
    return flops_per_image * images_per_s / (peak_flops * devices)
