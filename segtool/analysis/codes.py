"""Walks through code space: interpolation between two images' code grids, traversal of one atom,
and which atoms an image uses. Images are square crops (`image_sets.square_image`), so two
images give code grids of the same shape."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segtool.analysis.image_sets import to_model_input, to_uint8
from segtool.analysis.reconstruction import ACTIVE_THRESHOLD


def encode(model, image: np.ndarray):
    """uint8 [S, S, 3] -> codes [1, h, w, K] (float32 tensor on the model's device)."""
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        return model.eval().sparse_codes(to_model_input(image[None]).to(device)).float()


def decode(model, codes) -> np.ndarray:
    """Codes [N, h, w, K] -> uint8 images [N, S, S, 3]."""
    import torch

    with torch.inference_mode():
        return to_uint8(model.eval().decode(codes))


def interpolation(model, first: np.ndarray, second: np.ndarray, steps: int) -> np.ndarray:
    """Decoded (1 - t) Z_first + t Z_second for `steps` values of t from 0 to 1: [steps, S, S, 3]."""
    import torch

    if first.shape != second.shape:
        raise ValueError(f"images must have the same shape to interpolate, got {first.shape} and {second.shape}")
    za, zb = encode(model, first), encode(model, second)
    t = torch.linspace(0, 1, steps, device=za.device).view(-1, 1, 1, 1)
    return decode(model, (1 - t) * za + t * zb)


@dataclass
class AtomUse:
    atom: int
    mean_abs: float      # mean |z| of the atom over the image's cells
    active_share: float  # share of cells where |z| > ACTIVE_THRESHOLD


def atom_usage(codes) -> list[AtomUse]:
    """Every atom's use in one code grid [1, h, w, K] (or [h, w, K]), most used (mean |z|) first."""
    z = np.abs(np.asarray(codes.detach().cpu() if hasattr(codes, "detach") else codes, dtype=np.float64))
    z = z.reshape(-1, z.shape[-1])
    mean_abs, share = z.mean(axis=0), (z > ACTIVE_THRESHOLD).mean(axis=0)
    order = np.lexsort((np.arange(len(mean_abs)), -mean_abs))  # ties keep the lower atom index first
    return [AtomUse(int(i), float(mean_abs[i]), float(share[i])) for i in order]


def traversal_unit(codes) -> float:
    """The unit of a traversal: the mean length (L2) of the image's code vectors. An atom's own
    strength is too small a unit (the shipped model's most used atom: RMS 0.05, and -3..3 of it
    changes nothing visible); in this unit, v = 1 puts a whole typical cell's code on one atom."""
    length = float(codes.detach().float().norm(dim=-1).mean())
    return length if length > 0 else 1.0


def traversal(model, image: np.ndarray, atom: int, values: list[float]) -> tuple[np.ndarray, float]:
    """Decoded codes with `v * traversal_unit` added to atom `atom` at every cell, for each v:
    ([len(values), S, S, 3], the unit). Every cell, not only where the atom is active: the decoder then shows what
    the atom draws in each context of the image, and v = 0 is the plain reconstruction."""
    import torch

    codes = encode(model, image)
    if not 0 <= atom < codes.shape[-1]:
        raise ValueError(f"atom {atom} is out of range: this model has atoms 0..{codes.shape[-1] - 1}")
    scale = traversal_unit(codes)
    with torch.inference_mode():
        batch = codes.repeat(len(values), 1, 1, 1)
        batch[..., atom] += torch.tensor(values, dtype=batch.dtype, device=batch.device).view(-1, 1, 1) * scale
    return decode(model, batch), scale
