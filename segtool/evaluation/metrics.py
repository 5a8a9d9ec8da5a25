"""Per-image IoU and DICE, strict and IEM-protocol.

`strict` scores the predicted foreground as the user gets it. `iem` scores the prediction and
its inverse and keeps the better (what published IEM/ReDO/SC-VAE tables report): with two
regions it makes the choice of foreground irrelevant.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    pred, gt = pred.astype(bool), gt.astype(bool)
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0  # both empty: a perfect answer
    return float(np.logical_and(pred, gt).sum() / union)


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    pred, gt = pred.astype(bool), gt.astype(bool)
    total = pred.sum() + gt.sum()
    if total == 0:
        return 1.0
    return float(2.0 * np.logical_and(pred, gt).sum() / total)


BOUNDARY_TOLERANCE = 2  # pixels


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """Pixels of the mask with a 4-neighbour outside it (the image's edge is not a boundary)."""
    from scipy import ndimage as ndi

    mask = mask.astype(bool)
    return mask & ~ndi.binary_erosion(mask, border_value=1)


def boundary_f(pred: np.ndarray, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """Boundary F-score (as in DAVIS and BSDS): precision = share of the predicted outline within
    `tolerance` pixels of the true outline, recall = the converse, F = their harmonic mean.
    IoU barely moves when an outline is off by a few pixels; this does."""
    from scipy import ndimage as ndi

    pb, gb = mask_boundary(pred), mask_boundary(gt)
    if not pb.any() and not gb.any():
        return 1.0
    if not pb.any() or not gb.any():
        return 0.0
    to_gt = ndi.distance_transform_edt(~gb)
    to_pred = ndi.distance_transform_edt(~pb)
    precision = float((to_gt[pb] <= tolerance).mean())
    recall = float((to_pred[gb] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class MaskScores:
    iou: float
    dice: float
    iem_iou: float
    iem_dice: float
    inverse_better: bool  # the inverse of the prediction scores higher: the foreground choice was wrong
    boundary_f: float = float("nan")  # of the mask as given, at BOUNDARY_TOLERANCE pixels


def score_mask(pred: np.ndarray, gt: np.ndarray) -> MaskScores:
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    pred = pred.astype(bool)
    inv = ~pred
    i, d = iou(pred, gt), dice(pred, gt)
    ii, di = iou(inv, gt), dice(inv, gt)
    # IEM picks by IoU; DICE follows the same choice so the pair describes one mask.
    inverse_better = ii > i
    return MaskScores(i, d, max(i, ii), di if inverse_better else d, inverse_better, boundary_f(pred, gt))
