"""CIE Lab colour (D65, 2-degree observer) with scikit-image's formulas, in numpy.

Neither scikit-image's colour module (it imports scipy.linalg: 0.4 s of a cold start) nor
OpenCV's conversion (its first Lab call builds tables: 0.11-0.16 s) is on the path of a
`segment`: the features, RBD's superpixels and the overlay's outline colour all take Lab from here.
"""

from __future__ import annotations

import numpy as np

# sRGB primaries to CIE XYZ and the D65 white point (2-degree observer), as skimage.color has them.
XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423],
                         [0.212671, 0.715160, 0.072169],
                         [0.019334, 0.119193, 0.950227]])
D65_WHITE = np.array([0.95047, 1.0, 1.08883])


def _linear_from_srgb(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return np.where(values > 0.04045, ((values + 0.055) / 1.055) ** 2.4, values / 12.92)


# The linear value of each 8-bit level: a photo's pixels are looked up, not raised to 2.4.
_LINEAR_OF_BYTE = _linear_from_srgb(np.arange(256) / 255.0)


def lab_from_linear(linear: np.ndarray) -> np.ndarray:
    """Linear RGB [..., 3] -> CIE Lab float64 (D65, 2 degrees; L in [0, 100])."""
    xyz = (linear @ XYZ_FROM_RGB.T) / D65_WHITE
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])],
                    axis=-1)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1], [..., 3] -> CIE Lab float64, equal to skimage.color.rgb2lab to float rounding."""
    return lab_from_linear(_linear_from_srgb(rgb))


def lab_image(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (or float in [0, 1]) -> CIE Lab float32, scikit-image's formulas.

    In numpy rather than scikit-image (whose colour module imports scipy.linalg: 0.4 s of every
    cold start) or OpenCV (whose first Lab conversion builds its tables: 0.11-0.16 s)."""
    rgb = image[..., :3]
    linear = _LINEAR_OF_BYTE[rgb] if rgb.dtype == np.uint8 else _linear_from_srgb(rgb)
    return lab_from_linear(linear).astype(np.float32)
