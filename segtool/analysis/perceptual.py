"""Metrics that need a pretrained network: LPIPS and reconstruction FID (rFID).

Their weights cannot be downloaded by segtool (and are not shipped), so each metric is
computed only when the user has the network locally:

- a file given by the user: a `torch.export` program (`torch.export.save`) of the network.
  LPIPS: (x, y) -> distance per image, images [B, 3, H, W] in [-1, 1] (lpips' own convention).
  Inception: images [B, 3, H, W] in [0, 1] -> features [B, D] (pool3, D = 2048, for FID).
  Both are called one image at a time, so a program exported for a batch of one works;
- otherwise the `lpips` / `torch-fidelity` packages, when installed and their weights are
  already in torch's cache (`torch.hub.get_dir()/checkpoints`); they would otherwise download.

When neither is there, the metric is absent and `why` says so in one line: never a made-up number.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from segtool.errors import InputError

# The files those packages look for in torch's cache (their published names).
LPIPS_ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
FIDELITY_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


@dataclass
class PretrainedMetric:
    name: str
    run: Callable | None   # None: the network is not available
    source: str            # where the network came from, or why it is absent

    @property
    def available(self) -> bool:
        return self.run is not None


def load_exported(path: str | os.PathLike, what: str) -> Callable:
    """A network saved with torch.export.save, as a callable module on the CPU."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: no such file (the {what} network, saved with torch.export.save)")
    try:
        module = torch.export.load(str(path)).module()
    except Exception as exc:  # a wrong file fails in many ways inside torch; one line for all of them
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a torch.export program of the {what} network ({reason})") from None
    return module


def _torch_cache_file(name: str) -> Path | None:
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    return path if path.is_file() else None


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def lpips_metric(weights: str | os.PathLike | None = None) -> PretrainedMetric:
    """LPIPS from the user's exported network, else from the lpips package if its weights are cached."""
    if weights is not None:
        net = load_exported(weights, "LPIPS")
        return PretrainedMetric("LPIPS", _per_image(lambda x, y: net(x, y)), f"LPIPS from {weights}")
    if not _installed("lpips"):
        return PretrainedMetric("LPIPS", None, "LPIPS n/a: no LPIPS network given and the lpips package is not "
                                               "installed (its AlexNet weights cannot be downloaded here)")
    if _torch_cache_file(LPIPS_ALEXNET_FILE) is None:
        return PretrainedMetric("LPIPS", None, f"LPIPS n/a: lpips is installed but {LPIPS_ALEXNET_FILE} is not in "
                                               "torch's cache, and it would have to be downloaded")
    import lpips

    net = lpips.LPIPS(net="alex", verbose=False).eval()
    return PretrainedMetric("LPIPS", _per_image(lambda x, y: net(x, y)), "LPIPS (AlexNet) from the lpips package")


def inception_metric(weights: str | os.PathLike | None = None) -> PretrainedMetric:
    """Inception features for rFID from the user's exported network, else torch-fidelity's if cached."""
    if weights is not None:
        net = load_exported(weights, "Inception")
        return PretrainedMetric("rFID", _per_image(lambda x: net(x)), f"rFID features from {weights}")
    if not _installed("torch_fidelity"):
        return PretrainedMetric("rFID", None, "rFID n/a: no Inception network given and torch-fidelity is not "
                                              "installed (its Inception weights cannot be downloaded here)")
    cached = _torch_cache_file(FIDELITY_INCEPTION_FILE)
    if cached is None:
        return PretrainedMetric("rFID", None, f"rFID n/a: torch-fidelity is installed but {FIDELITY_INCEPTION_FILE} "
                                              "is not in torch's cache, and it would have to be downloaded")
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(cached)).eval()
    # torch-fidelity's extractor takes uint8 images and returns a tuple of the requested features.
    return PretrainedMetric("rFID", _per_image(lambda x: net((x * 255).round().to(torch.uint8))[0]),
                            "rFID features from torch-fidelity's Inception")


def _per_image(fn: Callable) -> Callable:
    """Calls `fn` on one image at a time and stacks the results as float64 numpy rows."""
    import torch

    def run(*batches):
        rows = []
        with torch.inference_mode():
            for i in range(len(batches[0])):
                value = fn(*(b[i:i + 1].float().cpu() for b in batches))
                rows.append(np.asarray(value.detach().float().reshape(1, -1).numpy(), dtype=np.float64))
        return np.concatenate(rows, axis=0)

    return run


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] (FID's formula)."""
    from scipy import linalg

    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        # Few images give singular covariances; the usual remedy (pytorch-fid): a tiny ridge.
        ridge = np.eye(len(cov_a)) * 1e-6
        root = linalg.sqrtm((cov_a + ridge) @ (cov_b + ridge))
    root = root.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))
