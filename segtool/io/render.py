"""Segmentation outputs as PNG bytes in memory (for `segtool serve`): nothing touches the disk.

Each function takes the RGB uint8 image [H, W, 3] and/or the boolean mask [H, W] at the same size.
"""

from __future__ import annotations

import numpy as np

RENDERINGS = ("mask", "overlay", "cutout")


def render(kind: str, image: np.ndarray, mask: np.ndarray) -> bytes:
    """One of RENDERINGS as PNG bytes, drawn exactly as `segtool segment` draws its files."""
    from segtool.io.outputs import cutout_image, encode_png, overlay_image

    if kind == "mask":
        picture = mask.astype(np.uint8) * 255
    elif kind == "cutout":
        picture = cutout_image(image, mask)
    elif kind == "overlay":
        picture = overlay_image(image, mask)
    else:
        raise ValueError(f"rendering {kind!r}: choose one of {', '.join(RENDERINGS)}")
    return encode_png(picture, kind)
