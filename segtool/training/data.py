"""Training images through HF `datasets`: a local folder or a Hub dataset, with augmentation.

Items are addressed as (index, sample_seed, resolution) so the augmentation of a sample is a
function of its seed alone: runs are reproducible across workers, ranks and resumes.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from segtool.io.images import IMAGE_SUFFIXES, centre_crop, image_files_under, to_rgb
from segtool.training.dataconfig import DataConfig, TrainingDataError  # noqa: F401 (re-exported)



def list_image_files(root: str | os.PathLike) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise TrainingDataError(f"{root}: data root is not a directory (pass --data-root DIR)")
    files = image_files_under(root)
    if not files:
        raise TrainingDataError(f"{root}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    return files


def load_image_sets(config: DataConfig):
    """(train, validation) HF datasets with an `image` column of PIL images."""
    import datasets

    if config.source == "imagefolder":
        if not config.root:
            raise TrainingDataError("the recipe's data.source is imagefolder but no folder was given: pass --data-root DIR")
        files = [str(p) for p in list_image_files(config.root)]
        if config.holdout >= len(files):
            raise TrainingDataError(f"{config.root}: {len(files)} images, not more than data.holdout = {config.holdout}")
        cut = len(files) - config.holdout
        # Folders beside the root add training images only: validation stays the root's last images.
        extra = [str(p) for root in config.extra_roots for p in list_image_files(root)]
        feature = datasets.Features({"image": datasets.Image()})
        train = datasets.Dataset.from_dict({"image": extra + files[:cut]}, features=feature)
        val = datasets.Dataset.from_dict({"image": files[cut:][: config.val_limit]}, features=feature)
        return train, val
    if config.source == "hub":
        if not config.name:
            raise TrainingDataError("data.source is hub but data.name (the Hub dataset) is not set")
        try:
            full = datasets.load_dataset(config.name, config.config_name, split=config.split)
            if config.val_split:
                val = datasets.load_dataset(config.name, config.config_name, split=config.val_split)
                train = full
            else:
                cut = len(full) - config.holdout
                train, val = full.select(range(cut)), full.select(range(cut, len(full)))
        except (ConnectionError, OSError, FileNotFoundError) as exc:
            raise TrainingDataError(f"cannot load Hub dataset {config.name!r} ({str(exc).splitlines()[0][:200]}); "
                                    "without internet use data.source=imagefolder with --data-root") from None
        if config.image_column != "image":
            train = train.rename_column(config.image_column, "image")
            val = val.rename_column(config.image_column, "image")
        val = val.select(range(min(len(val), config.val_limit)))
        return train, val
    raise TrainingDataError(f"unknown data.source {config.source!r}: use imagefolder or hub")


def random_resized_box(width: int, height: int, rng: np.random.Generator, scale, ratio) -> tuple[int, int, int, int]:
    """A crop box (left, top, right, bottom) covering a random area fraction in `scale` with an
    aspect ratio log-uniform in `ratio`; the centred largest crop if ten tries fail."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def pil_to_tensor(image) -> torch.Tensor:
    """PIL RGB -> float tensor [3, H, W] in [-1, 1]."""
    arr = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


class AugmentedImages:
    """The training-set protocol of `scvae.training.trainer`: random-resized crop + flip, [-1, 1]."""

    def __init__(self, dataset, config: DataConfig):
        self.dataset = dataset
        self.config = config
        self._cache: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def _image(self, index: int):
        from PIL import Image

        if index in self._cache:
            return self._cache[index]
        image = to_rgb(self.dataset[index]["image"])
        if self.config.cache:
            w, h = image.size
            s = self.config.cache_short_side / min(w, h)
            if s < 1:  # only shrink: tiny images are upscaled by the crop's resize later
                image = image.resize((round(w * s), round(h * s)), Image.BICUBIC)
            self._cache[index] = image
        return image

    def __getitem__(self, key) -> torch.Tensor:
        from PIL import Image

        index, seed, resolution = key
        rng = np.random.default_rng(seed)
        image = self._image(index)
        box = random_resized_box(*image.size, rng, self.config.crop_scale, self.config.crop_ratio)
        crop = image.resize((resolution, resolution), Image.BICUBIC, box=box)
        if self.config.hflip and rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        return pil_to_tensor(crop)


def validation_tensor(dataset, resolution: int) -> torch.Tensor:
    """Held-out images, centre-cropped at `resolution`, stacked [N, 3, r, r] in [-1, 1]."""
    if len(dataset) == 0:
        return torch.empty(0, 3, resolution, resolution)
    return torch.stack([pil_to_tensor(centre_crop(to_rgb(row["image"]), resolution)) for row in dataset])
