"""Per-cell feature grids the clustering runs on: colour (Lab), position, and SC-VAE code transforms."""

from __future__ import annotations

import numpy as np

from segtool.io.colour import lab_image
from segtool.settings import CODE_TRANSFORMS



def resize_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area-averaging when shrinking (no aliasing), bilinear when enlarging."""
    import cv2

    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def shrink_to_pixels(image: np.ndarray, max_pixels: int, min_side: int = 1) -> np.ndarray:
    """The image itself when it has at most `max_pixels`, else a copy of about that many pixels,
    aspect kept, each side at least `min_side`."""
    height, width = image.shape[:2]
    if height * width <= max_pixels:
        return image
    scale = np.sqrt(max_pixels / (height * width))
    return resize_image(image, max(min_side, round(width * scale)), max(min_side, round(height * scale)))


COLOUR_SAMPLES_PER_CELL = 8  # pixels per cell side kept before the Lab conversion


def colour_grid(image: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Mean Lab colour of each cell of an h x w grid over the image: [h, w, 3].

    A large photo is first area-averaged to 8 x 8 pixels per cell: the Lab conversion of every
    pixel of a 24-megapixel photo took seconds for a 32 x 32 grid, and the cell means hardly move
    (images of the 128 x 128 evaluation crop are never shrunk)."""
    h, w = grid
    if image.shape[0] > COLOUR_SAMPLES_PER_CELL * h and image.shape[1] > COLOUR_SAMPLES_PER_CELL * w:
        image = resize_image(image, COLOUR_SAMPLES_PER_CELL * w, COLOUR_SAMPLES_PER_CELL * h)
    return resize_image(lab_image(image), w, h)


def position_grid(h: int, w: int) -> np.ndarray:
    """(x, y) of each cell centre in [0, 1]: [h, w, 2]."""
    ys, xs = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    return np.stack([xs, ys], axis=-1).astype(np.float32)


def transform_codes(codes: np.ndarray, transform: str = "raw", pca_dims: int = 16) -> np.ndarray:
    """Code grid [h, w, K] -> feature grid [h, w, C].

    raw: the codes; abs: |z| (sign-free activity pattern); l2: each cell's code unit-normed
    (cosine geometry: what is active, not how strongly); pca: the image's top principal
    components of the codes (denoises the many weak atoms).
    """
    h, w, k = codes.shape
    flat = codes.reshape(h * w, k).astype(np.float32)
    if transform == "raw":
        out = flat
    elif transform == "abs":
        out = np.abs(flat)
    elif transform == "l2":
        out = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-8)
    elif transform == "pca":
        centred = flat - flat.mean(axis=0, keepdims=True)
        dims = min(pca_dims, min(centred.shape))
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        out = u[:, :dims] * s[:dims]
    else:
        raise ValueError(f"unknown code transform {transform!r}; choose one of {', '.join(CODE_TRANSFORMS)}")
    return out.reshape(h, w, -1)


def atom_histograms(codes: np.ndarray, radius: int) -> np.ndarray:
    """Code grid [h, w, K] -> [h, w, K]: the share of cells within `radius` (a square window,
    reflected at the border) where each atom is active (non-zero). What is active around a cell,
    not how strongly: a texture descriptor of the neighbourhood rather than of one patch."""
    active = (codes != 0).astype(np.float32)
    size = 2 * radius + 1
    # Window sums from a summed-area table of the reflected grid: any atom count, no channel limit.
    padded = np.pad(active, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    table = np.pad(padded.cumsum(0).cumsum(1), ((1, 0), (1, 0), (0, 0)))
    h, w = active.shape[:2]
    sums = table[size:size + h, size:size + w] - table[:h, size:size + w] - table[size:size + h, :w] + table[:h, :w]
    return sums / (size * size)


def standardise(features: np.ndarray) -> np.ndarray:
    """Scale a feature grid so its cells have unit mean squared distance to their mean: lets
    blocks of different kinds (codes, colour) be weighted against each other by one number."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    centred = flat - flat.mean(axis=0, keepdims=True)
    spread = np.sqrt((centred ** 2).sum(axis=1).mean())
    return (centred / max(spread, 1e-12)).reshape(features.shape).astype(np.float32)
