"""Dataset-wide clusters of patch codes (the paper's Fig. 7): every grid cell of every image is a
code vector; MiniBatchKMeans learns k centres from a stream of images, then a second pass assigns
each cell and keeps a uniform random sample of each cluster's pixel patches.

Memory does not grow with the number of images: the first pass holds one batch of codes at a
time (and the k centres), the second one batch plus `per_cluster` small patches per cluster
(reservoir sampling, Vitter's algorithm R). The price is encoding every image twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from segtool.analysis.montage import enlarge, tile_rows
from segtool.errors import InputError, UsageError
from segtool.io.images import DEFAULT_MAX_PIXELS, load_image
from segtool.pipeline.features import resize_image


@dataclass
class PatchClusters:
    centres: np.ndarray                 # [k, K]
    counts: np.ndarray                  # cells per cluster [k]
    samples: list[list[np.ndarray]]     # per cluster: up to per_cluster pixel patches [f, f, 3]
    images: int = 0
    cells: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)   # (file, reason): skipped images

    def summary(self) -> dict:
        return {"k": len(self.centres), "images": self.images, "cells": self.cells,
                "counts": [int(c) for c in self.counts],
                "skipped": [{"file": f, "reason": r} for f, r in self.failures]}


def _batches(files: list[Path], extractor, batch_images: int, max_pixels: int,
             failures: list[tuple[str, str]] | None) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
    """(image at the model's input size, code grid [h, w, K]) for each readable image, a batch at a
    time. Unreadable images are recorded in `failures` (once: the second pass passes None)."""
    for start in range(0, len(files), batch_images):
        images = []
        for path in files[start:start + batch_images]:
            try:
                images.append(load_image(path, max_pixels))
            except InputError as exc:
                if failures is not None:
                    failures.append((str(path), str(exc)))
        if not images:
            continue
        codes = extractor.extract(images)
        sized = [resize_image(im, z.shape[1] * extractor.factor, z.shape[0] * extractor.factor)
                 for im, z in zip(images, codes)]
        yield list(zip(sized, codes))


def cluster_patches(files: list[Path], extractor, k: int, per_cluster: int = 12, batch_images: int = 8,
                    seed: int = 0, max_pixels: int = DEFAULT_MAX_PIXELS,
                    progress: Callable[[str, int], None] | None = None) -> PatchClusters:
    """Clusters the cells of `files` with `extractor`'s model; `progress(pass_name, images_done)`."""
    from sklearn.cluster import MiniBatchKMeans

    kmeans = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=1024)
    failures: list[tuple[str, str]] = []
    pending: list[np.ndarray] = []
    images = cells = 0
    for batch in _batches(files, extractor, batch_images, max_pixels, failures):
        pending += [z.reshape(-1, z.shape[-1]) for _, z in batch]
        images += len(batch)
        # The first partial_fit initialises the centres (k-means++) and needs several cells per centre.
        if sum(len(p) for p in pending) >= 3 * k:
            stacked = np.concatenate(pending)
            cells += len(stacked)
            kmeans.partial_fit(stacked.astype(np.float32))
            pending = []
        if progress:
            progress("fit", images + len(failures))
    if pending:
        stacked = np.concatenate(pending)
        if cells == 0 and len(stacked) < k:
            raise UsageError(f"k = {k} clusters is more than the {len(stacked)} cells of these {images} images")
        cells += len(stacked)
        kmeans.partial_fit(stacked.astype(np.float32))
    if images == 0:
        raise InputError(f"none of the {len(files)} images could be read")

    rng = np.random.default_rng(seed)
    counts = np.zeros(k, np.int64)
    samples: list[list[np.ndarray]] = [[] for _ in range(k)]
    f = extractor.factor
    done = 0
    for batch in _batches(files, extractor, batch_images, max_pixels, None):
        for image, z in batch:
            labels = kmeans.predict(z.reshape(-1, z.shape[-1]).astype(np.float32)).reshape(z.shape[:2])
            for (i, j), c in np.ndenumerate(labels):
                counts[c] += 1
                slot = len(samples[c]) if len(samples[c]) < per_cluster else int(rng.integers(counts[c]))
                if slot < per_cluster:
                    patch = image[i * f:(i + 1) * f, j * f:(j + 1) * f].copy()
                    if slot == len(samples[c]):
                        samples[c].append(patch)
                    else:
                        samples[c][slot] = patch
        done += len(batch)
        if progress:
            progress("assign", done + len(failures))
    return PatchClusters(kmeans.cluster_centers_.astype(np.float32), counts, samples, images, cells, failures)


def patch_sheet(result: PatchClusters, tile: int = 32) -> tuple[np.ndarray, list[int]]:
    """One row per cluster, largest first, of its sampled patches enlarged to `tile` pixels:
    (image, the cluster id of each row)."""
    order = [int(c) for c in np.argsort(-result.counts, kind="stable") if result.counts[c] > 0]
    blank = np.full((tile, tile, 3), 255, np.uint8)
    rows = [[enlarge(p, tile) for p in result.samples[c]] or [blank] for c in order]
    return tile_rows(rows, gap=2), order
