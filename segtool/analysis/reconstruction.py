"""Reconstruction quality of one or more models on the same images (the paper's Table 1 and Fig. 4):
PSNR, SSIM, code sparsity, and LPIPS / rFID where their networks are at hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from segtool.analysis.image_sets import to_model_input
from segtool.analysis.montage import tile_rows, with_header
from segtool.analysis.perceptual import PretrainedMetric, frechet_distance

# |z| above this counts as an active code entry. LISTA's soft threshold gives exact zeros, so for
# SC-VAEs this equals "non-zero"; other coders leave tiny values that should not count as use.
ACTIVE_THRESHOLD = 1e-3
GRID_IMAGES = 6   # images shown in recon_grid.png


@dataclass
class ReconResult:
    model: str
    images: int
    psnr: float
    ssim: float
    hoyer: float      # Hoyer sparsity per code vector, averaged over every cell of every image
    active: float     # share of code entries with |z| > ACTIVE_THRESHOLD
    lpips: float | None = None
    rfid: float | None = None
    examples: np.ndarray = field(default=None, repr=False)  # uint8 [GRID_IMAGES, S, S, 3]

    def row(self) -> dict:
        return {"model": self.model, "images": self.images, "psnr": round(self.psnr, 3), "ssim": round(self.ssim, 4),
                "hoyer": round(self.hoyer, 4), "active": round(self.active, 4),
                "lpips": None if self.lpips is None else round(self.lpips, 4),
                "rfid": None if self.rfid is None else round(self.rfid, 3), "active_threshold": ACTIVE_THRESHOLD}


def reconstruction_quality(model, name: str, images: np.ndarray, batch_size: int = 16,
                           lpips: PretrainedMetric | None = None, inception: PretrainedMetric | None = None,
                           reference_features: np.ndarray | None = None,
                           progress: Callable[[int], None] | None = None) -> ReconResult:
    """The metrics of `model` on uint8 images [N, S, S, 3]. rFID needs the Inception features of
    the originals (`reference_features`, from `inception_features`), computed once for all models."""
    import torch

    from scvae.sparse import active_fraction, hoyer_sparsity
    from scvae.training.metrics import psnr, reconstruction_batches, ssim

    psnrs, ssims, hoyers, distances, features, shown = [], [], [], [], [], []
    active_entries, entries = 0.0, 0
    for a, b, codes in reconstruction_batches(model, to_model_input(images), batch_size):
        psnrs += psnr(b, a).tolist()
        ssims += ssim(b, a)
        hoyers.append(hoyer_sparsity(codes.float()).flatten())
        active_entries += active_fraction(codes, ACTIVE_THRESHOLD) * codes.numel()
        entries += codes.numel()
        if lpips is not None and lpips.available:
            distances.append(lpips.run(b * 2 - 1, a * 2 - 1).reshape(-1))
        if inception is not None and inception.available:
            features.append(inception.run(b))
        if sum(len(s) for s in shown) < GRID_IMAGES:
            shown.append((b.permute(0, 2, 3, 1) * 255).round().byte().cpu().numpy())
        if progress:
            progress(len(psnrs))
    rfid = None
    if features and reference_features is not None:
        rfid = frechet_distance(reference_features, np.concatenate(features))
    return ReconResult(name, len(psnrs), float(np.mean(psnrs)), float(np.mean(ssims)),
                       float(torch.cat(hoyers).mean()), active_entries / max(entries, 1),
                       float(np.concatenate(distances).mean()) if distances else None, rfid,
                       np.concatenate(shown)[:GRID_IMAGES])


def inception_features(inception: PretrainedMetric, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Features of the original images [N, D] for rFID."""
    x = to_model_input(images)
    return np.concatenate([inception.run((x[i:i + batch_size] + 1) / 2) for i in range(0, len(x), batch_size)])


def recon_grid(originals: np.ndarray, results: list[ReconResult]) -> np.ndarray:
    """Fig. 4 of the paper: one row per image, the original then each model's reconstruction."""
    rows = [[originals[i]] + [r.examples[i] for r in results] for i in range(min(len(originals), GRID_IMAGES))]
    return with_header(tile_rows(rows), ["original"] + [r.model for r in results], originals.shape[2])
