"""Noise for robustness sweeps: i.i.d. Gaussian on images in [0, 1], clipped, seeded per image."""

from __future__ import annotations

import numpy as np


def add_gaussian_noise(image: np.ndarray, sigma: float, seed: int, index: int) -> np.ndarray:
    """image uint8 [H, W, 3] + N(0, sigma^2) on the [0, 1] scale, clipped, back to uint8.

    The generator is seeded by (seed, index, sigma), so every method sees the same noisy image
    and a resumed evaluation regenerates it exactly.
    """
    if sigma <= 0:
        return image
    rng = np.random.default_rng([seed, index, int(round(sigma * 1e6))])
    noisy = image.astype(np.float32) / 255.0 + rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return (np.clip(noisy, 0.0, 1.0) * 255.0).round().astype(np.uint8)
