"""Segmentation outputs as PNG bytes in memory (for `segtool serve`): nothing touches the disk.

Each function takes the RGB uint8 image [H, W, 3] and/or the boolean mask [H, W] at the same size.
"""

from __future__ import annotations

import numpy as np

RENDERINGS = ("mask", "overlay", "cutout")


def png_bytes(array: np.ndarray) -> bytes:
    """A uint8 array (grey [H, W], RGB or RGBA [H, W, 3|4]) encoded as PNG. OpenCV, not Pillow:
    at their default compression, Pillow is several times slower on a full-size photo's cut-out."""
    import cv2

    data = array if array.ndim == 2 else array[..., [2, 1, 0, 3][:array.shape[-1]]]  # OpenCV encodes BGR(A)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(data, dtype=np.uint8))
    if not ok:
        raise ValueError(f"PNG encoding failed for an array of shape {array.shape}")
    return encoded.tobytes()


def mask_png(mask: np.ndarray) -> bytes:
    """Foreground 255, background 0, at the mask's size."""
    return png_bytes(mask.astype(np.uint8) * 255)


def cutout_png(image: np.ndarray, mask: np.ndarray) -> bytes:
    """The image as RGBA with the background fully transparent."""
    alpha = mask.astype(np.uint8)[..., None] * 255
    return png_bytes(np.concatenate([image, alpha], axis=-1))


def overlay_png(image: np.ndarray, mask: np.ndarray) -> bytes:
    """The image with the foreground tinted and outlined, as `segtool segment` draws it."""
    from segtool.io.outputs import overlay_image

    return png_bytes(overlay_image(image, mask))


def render(kind: str, image: np.ndarray, mask: np.ndarray) -> bytes:
    """One of RENDERINGS as PNG bytes."""
    if kind == "mask":
        return mask_png(mask)
    if kind == "cutout":
        return cutout_png(image, mask)
    if kind == "overlay":
        return overlay_png(image, mask)
    raise ValueError(f"rendering {kind!r}: choose one of {', '.join(RENDERINGS)}")
