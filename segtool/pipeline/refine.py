"""From a coarse grid mask to a mask at image resolution: upsampling and optional refinement."""

from __future__ import annotations

import numpy as np

from segtool.settings import REFINEMENTS, UPSAMPLINGS


def soft_upsample(grid_mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a 0/1 (or vote-fraction) grid to [height, width] floats."""
    import cv2

    return cv2.resize(grid_mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)


def upsample_mask(grid_mask: np.ndarray, height: int, width: int, image: np.ndarray | None = None,
                  method: str = "bilinear") -> np.ndarray:
    """The grid's decision at the image's resolution, thresholded at 1/2 (a majority where several
    clusterings voted).

    bilinear:   smooth edges instead of blocks, but they follow the grid, not the image.
    guided:     the bilinear map passed through a guided filter (He et al. 2010) with the image
                as guide: inside a window the output is a linear function of the image, so the
                1/2 crossing moves onto the image's own edges within about one grid cell.
    superpixel: each SLIC superpixel of the image takes the mean of the bilinear map over it:
                the mask's outline becomes superpixel outlines.
    """
    if method == "bilinear" or image is None:
        return soft_upsample(grid_mask, height, width) > 0.5 - 1e-6
    return upsample_votes(grid_mask, height, width, image, method) > 0.5


def upsample_votes(grid_mask: np.ndarray, height: int, width: int, image: np.ndarray | None = None,
                   method: str = "bilinear") -> np.ndarray:
    """The map upsample_mask cuts at 1/2, as floats (about [0, 1]): to blend with other maps first."""
    soft = soft_upsample(grid_mask, height, width)
    if method == "bilinear" or image is None:
        return soft
    cell = max(height / grid_mask.shape[0], width / grid_mask.shape[1])
    if method == "guided":
        return guided_filter(image, soft, radius=max(2, int(round(cell))), eps=1e-3)
    if method == "superpixel":
        return superpixel_snap(image, soft, cell)
    raise ValueError(f"unknown upsampling {method!r}; choose one of {', '.join(UPSAMPLINGS)}")


def guided_filter(image: np.ndarray, p: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """The colour guided filter of He, Sun and Tang (ECCV 2010 / TPAMI 2013) with box windows of
    side 2 * radius + 1; `image` uint8 RGB is the guide (scaled to [0, 1]), `p` the input map."""
    import cv2

    size = (2 * radius + 1, 2 * radius + 1)

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_64F, size, borderType=cv2.BORDER_REFLECT)

    guide = image[..., :3].astype(np.float64) / 255.0
    p = p.astype(np.float64)
    mean_i = np.stack([box(guide[..., c]) for c in range(3)], axis=-1)
    mean_p = box(p)
    cov_ip = np.stack([box(guide[..., c] * p) for c in range(3)], axis=-1) - mean_i * mean_p[..., None]
    # The per-pixel 3x3 system (Sigma + eps I) a = cov solved by the symmetric inverse's cofactors,
    # as He's reference code does: several times faster than a batched np.linalg.solve.
    def var(u: int, v: int) -> np.ndarray:
        return box(guide[..., u] * guide[..., v]) - mean_i[..., u] * mean_i[..., v] + (eps if u == v else 0.0)

    rr, rg, rb, gg, gb, bb = var(0, 0), var(0, 1), var(0, 2), var(1, 1), var(1, 2), var(2, 2)
    inv_rr, inv_rg, inv_rb = gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb
    inv_gg, inv_gb, inv_bb = rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg
    det = rr * inv_rr + rg * inv_rg + rb * inv_rb
    c_r, c_g, c_b = cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]
    a = np.stack([inv_rr * c_r + inv_rg * c_g + inv_rb * c_b,
                  inv_rg * c_r + inv_gg * c_g + inv_gb * c_b,
                  inv_rb * c_r + inv_gb * c_g + inv_bb * c_b], axis=-1) / det[..., None]
    b = mean_p - np.einsum("hwc,hwc->hw", a, mean_i)
    mean_a = np.stack([box(a[..., c]) for c in range(3)], axis=-1)
    return np.einsum("hwc,hwc->hw", mean_a, guide) + box(b)


def superpixel_snap(image: np.ndarray, soft: np.ndarray, cell: float) -> np.ndarray:
    """Mean of `soft` over each SLIC superpixel of about half a grid cell's side."""
    from skimage.segmentation import slic

    h, w = soft.shape
    n_segments = max(16, int(h * w / max(1.0, (cell / 2) ** 2)))
    segments = slic(image[..., :3], n_segments=n_segments, compactness=10, start_label=0)
    sums = np.bincount(segments.ravel(), weights=soft.ravel())
    counts = np.bincount(segments.ravel())
    return (sums / np.maximum(counts, 1))[segments]


# The per-image cut stays within these bounds: a map that barely varies (every clustering agreeing,
# no saliency contrast) has an Otsu threshold at noise, and cutting there would keep or drop it all.
OTSU_CUT_RANGE = (0.25, 0.6)


def map_cut(soft: np.ndarray, cut: float | str) -> float:
    """Where a soft foreground map is cut: `cut` itself, or for "otsu" Otsu's threshold of the map's
    values (within OTSU_CUT_RANGE), which falls between the object's and the background's levels
    wherever both sit, not at a fixed 1/2 that an object half the clusterings missed falls below."""
    if cut != "otsu":
        return float(cut)
    from segtool.pipeline.superpixels import otsu_threshold

    return float(np.clip(otsu_threshold(soft), *OTSU_CUT_RANGE))


def clean_mask(mask: np.ndarray, fill_holes: bool = False, min_part: float = 0.0) -> np.ndarray:
    """Fill enclosed holes and drop foreground parts smaller than `min_part` of the image
    (the largest part always stays): objects are mostly solid, specks are mostly noise.

    Connected parts and holes are 4-connected, as scipy.ndimage's defaults; OpenCV computes them
    (importing scipy.ndimage cost a third of a second of every cold start)."""
    import cv2

    mask = mask.astype(bool)
    if fill_holes and not mask.all():
        # A hole is a background part that does not touch the image's edge.
        n, parts = cv2.connectedComponents((~mask).astype(np.uint8), connectivity=4)
        edge = np.unique(np.concatenate([parts[0], parts[-1], parts[:, 0], parts[:, -1]]))
        mask = mask | ~np.isin(parts, edge)
    if min_part > 0 and mask.any():
        n, parts, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
        if n > 2:
            sizes = stats[1:, cv2.CC_STAT_AREA]
            keep = np.flatnonzero((sizes >= min_part * mask.size) | (sizes == sizes.max())) + 1
            mask = np.isin(parts, keep)
    return mask


MAX_REFINE_NOISE = 0.12


def grabcut_from_mask(image: np.ndarray, mask: np.ndarray, iterations: int = 5, sure_margin: float = 0.08,
                      blur: float = 1.0, max_noise: float = MAX_REFINE_NOISE) -> np.ndarray:
    """GrabCut seeded from a mask instead of a rectangle.

    Pixels deep inside the mask (eroded by `sure_margin` of the short side) are sure
    foreground, pixels far outside it sure background, the band between is left to GrabCut's
    colour models. Those models are fitted on a copy blurred by `blur` pixels, and the step is
    skipped on images whose estimated noise exceeds `max_noise` (on [0, 1]): on noisy pixels
    the colour models fail and GrabCut undoes a good mask (measured in docs/PIPELINE.md). If
    the seed leaves either class without sure pixels, or GrabCut empties the mask, the seed
    mask is returned unchanged.
    """
    import cv2

    mask = mask.astype(bool)
    if mask.all() or not mask.any() or estimate_noise_sigma(image) > max_noise:
        return mask
    h, w = mask.shape
    radius = max(1, int(round(sure_margin * min(h, w))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    m8 = mask.astype(np.uint8)
    sure_fg = cv2.erode(m8, kernel).astype(bool)
    sure_bg = ~cv2.dilate(m8, kernel).astype(bool)
    if not sure_fg.any() or not sure_bg.any():
        return mask
    gc = np.where(mask, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    gc[sure_fg] = cv2.GC_FGD
    gc[sure_bg] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(image[..., ::-1])
    if blur > 0:
        bgr = cv2.GaussianBlur(bgr, (0, 0), blur)
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation draws from OpenCV's global RNG: fix it per call
    try:
        cv2.grabCut(bgr, gc, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return mask  # degenerate colour models (e.g. a flat image)
    out = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    return out if out.any() else mask


def refine_mask(image: np.ndarray, mask: np.ndarray, method: str = "none") -> np.ndarray:
    if method == "none":
        return mask
    if method == "grabcut":
        return grabcut_from_mask(image, mask)
    raise ValueError(f"unknown refinement {method!r}; choose one of {', '.join(REFINEMENTS)}")


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
