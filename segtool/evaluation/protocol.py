"""The evaluation crop of the IEM/ReDO protocol: short side to `size`, then a centre square."""

from __future__ import annotations

import numpy as np

IMAGE_RESIZE_MODES = ("bilinear", "nearest")


def short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(new_height, new_width) with the short side = size and the long side rounded."""
    if height <= width:
        return size, max(size, round(width * size / height))
    return max(size, round(height * size / width)), size


def _centre_box(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    # Offsets rounded like torchvision's CenterCrop, so odd margins split the same way.
    top = int(round((height - size) / 2.0))
    left = int(round((width - size) / 2.0))
    return left, top, left + size, top + size


def iem_crop(image: np.ndarray, mask: np.ndarray, size: int = 128,
             image_resize: str = "bilinear") -> tuple[np.ndarray, np.ndarray]:
    """Resize so the short side is `size`, then centre-crop size x size.

    Masks are always resized nearest-neighbour, so they stay binary. Images are resized
    bilinearly by default; `image_resize="nearest"` repeats the IEM reference code exactly.
    Returns (uint8 size x size x C image, bool size x size mask).
    """
    from PIL import Image

    if image_resize not in IMAGE_RESIZE_MODES:
        raise ValueError(f"image_resize must be one of {', '.join(IMAGE_RESIZE_MODES)}, not {image_resize!r}")
    if size < 1:
        raise ValueError(f"size must be positive, not {size}")
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise ValueError(f"image must be a uint8 HxW, HxWx3 or HxWx4 array, got {image.dtype} with shape {image.shape}")
    if mask.ndim != 2 or mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")

    height, width = mask.shape
    new_height, new_width = short_side_size(height, width, size)
    box = _centre_box(new_height, new_width, size)
    resample = Image.Resampling.BILINEAR if image_resize == "bilinear" else Image.Resampling.NEAREST
    image_out = Image.fromarray(image).resize((new_width, new_height), resample).crop(box)
    mask_image = Image.fromarray(mask.astype(bool).astype(np.uint8) * 255)
    mask_out = mask_image.resize((new_width, new_height), Image.Resampling.NEAREST).crop(box)
    return np.array(image_out, dtype=np.uint8), np.asarray(mask_out) > 127
