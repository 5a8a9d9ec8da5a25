"""Which images an analysis runs on, and the square crops the model sees."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from segtool.errors import InputError, UsageError
from segtool.io.images import DEFAULT_MAX_PIXELS, centre_crop, image_files_under, load_image

BENCHMARKS = ("flowers", "cub", "isic")


def choose_images(spec: str, data_root: str | os.PathLike | None = None, holdout: int | None = None,
                  limit: int | None = None) -> list[Path]:
    """Image files of a folder (subfolders included, sorted by path), `folder:PATH` (its images/
    subfolder when it has one, as `eval` reads it) or a benchmark's test split (flowers, cub,
    isic, under `data_root`). `holdout` keeps the last N, which is what training holds out of an
    image folder; `limit` then keeps the first N of those."""
    if spec in BENCHMARKS:
        from segtool.data.readers import open_dataset

        files = [sample.image_path for sample in open_dataset(spec, data_root).samples()]
    else:
        folder = Path(spec[len("folder:"):] if spec.startswith("folder:") else spec).expanduser()
        if spec.startswith("folder:") and (folder / "images").is_dir():
            folder = folder / "images"
        if not folder.is_dir():
            raise UsageError(f"{spec}: not a folder of images nor one of {', '.join(BENCHMARKS)}")
        files = image_files_under(folder)
        if not files:
            raise InputError(f"{folder}: holds no image files")
    if holdout is not None:
        if holdout > len(files):
            raise UsageError(f"{spec}: {len(files)} images, fewer than the {holdout} held out asked for")
        files = files[len(files) - holdout:]
    return files[:limit] if limit is not None else files


def square_image(path: str | os.PathLike, size: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The image, its short side resized to `size` and centre-cropped to size x size: uint8
    [size, size, 3], the crop `train` validates on (so the numbers agree with its logs)."""
    from PIL import Image

    return np.asarray(centre_crop(Image.fromarray(load_image(path, max_pixels)), size), dtype=np.uint8)


def to_model_input(images: np.ndarray):
    """uint8 [N, H, W, 3] -> float tensor [N, 3, H, W] in [-1, 1], as the model was trained."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)


def to_uint8(images) -> np.ndarray:
    """Model output in [-1, 1] [N, 3, H, W] -> uint8 [N, H, W, 3]."""
    x = ((images.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255)
    return x.permute(0, 2, 3, 1).numpy().astype(np.uint8)
