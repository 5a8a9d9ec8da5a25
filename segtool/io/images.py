"""Reading user images safely: one clear error per bad file, nothing decoded that should not be.

Handled as valid: alpha (composited on white), greyscale, palette, 16-bit, CMYK, EXIF
orientation (pixels come back as viewers display them), extreme aspect ratios.
Refused with a one-line `ImageLoadError`: missing paths, directories, empty files, non-images,
truncated or corrupt files, images below MIN_SIDE pixels a side, and images above a pixel
limit, checked from the header before decoding (decompression bombs).
"""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from segtool.errors import InputError

DEFAULT_MAX_PIXELS = 100_000_000
MIN_SIDE = 8
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


class ImageLoadError(InputError):
    """An input image that cannot be used; the message names the file and the reason."""


def to_rgb(image):
    """A PIL image in its displayed orientation as 8-bit RGB."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        # A 16-bit mode always spans 0..65535: guessing from the values would turn a dark 16-bit
        # image (all values <= 255) into a bright 8-bit one. Only "I"/"F" carry no range.
        # Float images are conventionally in [0, 1] when no value exceeds 1.
        if image.mode.startswith("I;16") or arr.max() > 255:
            top = 65535.0
        elif image.mode == "F" and arr.max() <= 1.0:
            top = 1.0
        else:
            top = 255.0
        image = Image.fromarray((arr / top * 255.0).clip(0, 255).round().astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def load_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB uint8 array [H, W, 3] of an image file, or ImageLoadError."""
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise ImageLoadError(f"{path}: broken symbolic link (its target does not exist)")
        raise ImageLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a directory, not an image")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageLoadError(f"{path}: cannot read ({exc.strerror})") from None
    if size == 0:
        raise ImageLoadError(f"{path}: empty file")
    return _decode(path, path, max_pixels)


def decode_image(data: bytes, label: str = "upload", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """RGB uint8 array [H, W, 3] of an image's bytes (an upload), or ImageLoadError naming `label`,
    with the same checks as a file: empty, not an image, corrupt, too small, above the pixel limit."""
    import io

    if not data:
        raise ImageLoadError(f"{label}: empty file")
    return _decode(io.BytesIO(data), label, max_pixels)


_limit_lock = threading.Lock()
_limit_holders = 0
_saved_limit = None


@contextmanager
def _pil_limit_lifted():
    """PIL's own pixel limit off while we decode: ours is checked from the header, and PIL's would
    fire first with its own wording. The limit is a global and decodes may run in several threads
    (`segtool serve`), so the first to enter saves it and the last to leave restores it."""
    global _limit_holders, _saved_limit
    from PIL import Image

    with _limit_lock:
        if _limit_holders == 0:
            _saved_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _limit_holders += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_holders -= 1
            if _limit_holders == 0:
                Image.MAX_IMAGE_PIXELS = _saved_limit


def _decode(source, label, max_pixels: int) -> np.ndarray:
    """Decode a path or a binary stream; messages name `label`. The pixel limit is checked from the
    header, before any pixel is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with _pil_limit_lifted(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(source) as image:
                width, height = image.size
                if width * height > max_pixels:
                    # Exact pixel counts: rounding to megapixels printed "limit of 0" for small limits.
                    raise ImageLoadError(
                        f"{label}: {width}x{height} = {width * height:,} pixels is above the limit of {max_pixels:,} "
                        "(a decompression bomb?); raise it with --max-pixels if the file is trusted")
                if min(width, height) < MIN_SIDE:
                    raise ImageLoadError(f"{label}: {width}x{height} pixels is too small to segment "
                                         f"(each side needs at least {MIN_SIDE})")
                image.load()
                rgb = to_rgb(image)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{label}: not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageLoadError(f"{label}: truncated or corrupt image ({reason})") from None
    except MemoryError:
        raise ImageLoadError(f"{label}: too large to decode in the available memory") from None
    return np.asarray(rgb, dtype=np.uint8)


def looks_like_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_files_under(root: str | os.PathLike) -> list[Path]:
    """Every image file below `root` (subfolders included), sorted by path: the order training
    uses, so "the last N" means the same images to `train` (its hold-out) and to `recon`."""
    return sorted(p for p in Path(root).rglob("*") if looks_like_image(p) and p.is_file())


def centre_crop(image, size: int):
    """A PIL image resized so the short side is `size` (bilinear), then centre-cropped size x size."""
    from PIL import Image

    w, h = image.size
    s = size / min(w, h)
    image = image.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
    w, h = image.size
    left, top = (w - size) // 2, (h - size) // 2
    return image.crop((left, top, left + size, top + size))
