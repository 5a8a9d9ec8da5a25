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


@dataclass(frozen=True)
class MaskScores:
    iou: float
    dice: float
    iem_iou: float
    iem_dice: float
    inverse_better: bool  # the inverse of the prediction scores higher: the foreground choice was wrong


def score_mask(pred: np.ndarray, gt: np.ndarray) -> MaskScores:
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    pred = pred.astype(bool)
    inv = ~pred
    i, d = iou(pred, gt), dice(pred, gt)
    ii, di = iou(inv, gt), dice(inv, gt)
    # IEM picks by IoU; DICE follows the same choice so the pair describes one mask.
    inverse_better = ii > i
    return MaskScores(i, d, max(i, ii), di if inverse_better else d, inverse_better)
