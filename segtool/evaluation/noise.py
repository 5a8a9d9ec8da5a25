"""Noise for robustness sweeps: i.i.d. Gaussian on images in [0, 1], clipped, seeded per image."""

from __future__ import annotations

import numpy as np


def parse_noise_levels(text: str) -> list[float]:
    """'0,0.1,0.2' -> [0.0, 0.1, 0.2]; negative or non-numeric values are a ValueError."""
    levels = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"--noise: {part!r} is not a number (give sigmas like 0,0.1,0.2)") from None
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"--noise: sigma must be a finite number >= 0, got {part}")
        levels.append(value)
    if not levels:
        raise ValueError("--noise: give at least one sigma, e.g. --noise 0 or --noise 0,0.1,0.2")
    return sorted(set(levels))


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


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of i.i.d. Gaussian noise in an image, on the [0, 1] scale.

    Immerkaer's estimator (1996): a 3x3 operator that cancels smooth structure and edges to
    first order, so what remains is mostly noise; about 0.01 on clean photos.
    """
    import cv2

    grey = image.astype(np.float64).mean(axis=-1) / 255.0 if image.ndim == 3 else image / 255.0
    if min(grey.shape) < 3:
        return 0.0
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    response = cv2.filter2D(grey, -1, kernel)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(response).sum() / (6.0 * response.size))
