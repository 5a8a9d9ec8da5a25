"""The one-call Python API: images in any usual form -> masks, with the method and its model
built once by name (what `segtool.Segmenter` and `segtool.segment` are).

    import segtool
    mask = segtool.segment("photo.jpg")         # bool numpy array at the photo's size
    seg = segtool.Segmenter("scvae", k=3)       # the model loads once, on the first image
    result = seg(image)                         # a SegmentResult: .mask, .labels, .foreground_fraction ...

An image is a path, a numpy array (H x W x 3 RGB, or greyscale, or RGBA; uint8, or floats in
[0, 1]) or a PIL image. A model is a shipped name, a checkpoint path, a loaded `scvae.SCVAE`, or
a `CodeExtractor`; None is the shipped default.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from segtool.errors import InputError
from segtool.io.images import DEFAULT_MAX_PIXELS, MIN_SIDE, load_image, to_rgb


def as_rgb(image, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An RGB uint8 array [H, W, 3] from a path, a numpy array or a PIL image (InputError otherwise)."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, max_pixels=max_pixels)
    if hasattr(image, "getexif") and hasattr(image, "mode"):  # a PIL image (PIL itself stays unimported)
        array = np.asarray(to_rgb(image), dtype=np.uint8)
    elif isinstance(image, np.ndarray):
        array = _array_to_rgb(image)
    else:
        raise InputError(f"expected an image path, a numpy array or a PIL image, got {type(image).__name__}")
    height, width = array.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise InputError(f"a {width}x{height} image is too small to segment (each side needs at least {MIN_SIDE})")
    if height * width > max_pixels:
        raise InputError(f"a {width}x{height} image is above the limit of {max_pixels:,} pixels")
    return array


def _array_to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise InputError(f"an image array must be H x W, H x W x 3 (RGB) or H x W x 4 (RGBA), got shape {image.shape}")
    if image.dtype == np.uint8 and image.shape[2] in (1, 3):
        # Already 8-bit: no round trip through float (0.7 s on a 12-megapixel photo).
        return np.ascontiguousarray(np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image)
    if image.dtype == np.uint8:
        values = image.astype(np.float32)
    elif image.dtype == bool:
        values = image.astype(np.float32) * 255
    elif np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            raise InputError("a float image array must hold values in [0, 1] (use uint8 for 0..255)")
        values = image.astype(np.float32) * 255
    else:
        raise InputError(f"an image array must be uint8, bool or float in [0, 1], got {image.dtype}")
    if values.shape[2] == 4:  # composited on white, as image files with alpha are
        alpha = values[..., 3:] / 255
        values = values[..., :3] * alpha + 255 * (1 - alpha)
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    return values.round().clip(0, 255).astype(np.uint8)


def _extractor_factory(model, device: str, batch_size: int, cache: bool, cache_dir, precision: str = "auto"):
    """A function building the code extractor on first use, from any accepted form of model."""
    from segtool.locations import codes_cache_dir
    from segtool.pipeline.models import load_extractor

    if model is None or isinstance(model, (str, os.PathLike)):
        name = None if model is None else str(model)
        return lambda: load_extractor(name, device=device, precision=precision, batch_size=batch_size, cache=cache,
                                      cache_dir=None if cache_dir is None else str(cache_dir))
    if hasattr(model, "extract"):  # already a CodeExtractor
        return lambda: model

    def wrap_loaded_model():
        from segtool.pipeline.extract import CodeExtractor
        from segtool.pipeline.models import resolve_device

        # "auto" keeps a loaded model where the caller put it.
        where = str(next(model.parameters()).device) if device == "auto" else resolve_device(device)
        return CodeExtractor(model, device=where, batch_size=batch_size, precision=precision,
                             cache_dir=codes_cache_dir(cache_dir) if cache else None)
    return wrap_loaded_model


class Segmenter:
    """A segmentation method built by name, reused for many images (its model loads once).

    Parameters
    ----------
    method : str, default "scvae"
        A method of `segtool.pipeline.registry` (scvae, colour-pipeline, colour, grabcut, rbd,
        ellipse), optionally with settings in brackets: "scvae[rule=simple]".
    k : int, optional
        Clusters per image; the default is the measured default (a vote over several k).
    model : name, path, scvae.SCVAE or CodeExtractor, optional
        The backbone of the model-based methods; None is the shipped default model.
    device : "auto" | "cpu" | "cuda"
    precision : "auto" | "float32" | "bfloat16"
        The encoder's; auto is bfloat16 where the device computes it natively (scvae.devices).
    batch_size : int
        Images encoded together by `segment_batch`.
    cache, cache_dir :
        Keep codes on disk under cache_dir/codes (default root: $SEGTOOL_CACHE, else
        ~/.cache/segtool); off by default.
    **settings :
        Any pipeline setting (refine="grabcut", rule="simple", ...), as in the brackets.
    """

    def __init__(self, method: str = "scvae", *, k: int | None = None, model=None, device: str = "auto",
                 precision: str = "auto", batch_size: int = 8, cache: bool = False, cache_dir=None, max_pixels: int = DEFAULT_MAX_PIXELS,
                 **settings):
        from scvae.devices import check_precision_name
        from segtool.pipeline.registry import MethodSpec, build_segmenter, parse_method

        check_precision_name(precision)  # a bad name fails here, not at the first image
        spec = parse_method(method)
        spec = MethodSpec(spec.name, {**spec.overrides, **settings, **({"k": k} if k is not None else {})})
        self.max_pixels = max_pixels
        self.method = build_segmenter(spec, extractor_factory=_extractor_factory(model, device, batch_size, cache,
                                                                                  cache_dir, precision))

    def _prepare(self, image) -> np.ndarray:
        from segtool.pipeline.registry import k_beyond_grid

        rgb = as_rgb(image, self.max_pixels)
        problem = k_beyond_grid(self.method, *rgb.shape[:2])
        if problem:
            raise InputError(f"k is too large for a {rgb.shape[1]}x{rgb.shape[0]} image: {problem}")
        return rgb

    def segment(self, image):
        """The SegmentResult of one image: `.mask` is a bool array at the image's size."""
        return self.method.segment(self._prepare(image))

    __call__ = segment

    def segment_batch(self, images: list) -> list:
        """SegmentResults of several images, encoded together."""
        return self.method.segment_batch([self._prepare(image) for image in images])

    def settings(self) -> dict:
        return self.method.settings()

    def __repr__(self) -> str:
        return f"segtool.Segmenter({type(self.method).__name__})"


@lru_cache(maxsize=4)
def _shared_segmenter(method: str, k: int | None, model: str | None) -> Segmenter:
    return Segmenter(method, k=k, model=model)


def segment(image, k: int | None = None, model=None, method: str = "scvae") -> np.ndarray:
    """The foreground mask of one image: a bool numpy array at the image's size. Named or default
    models are loaded once and kept for the next call."""
    if model is None or isinstance(model, str):
        segmenter = _shared_segmenter(method, k, model)
    else:
        segmenter = Segmenter(method, k=k, model=model)
    return segmenter.segment(image).mask
