"""Spectral clustering with an affinity only sparse codes have: the overlap of active atom sets.

    .venv/bin/python bench/code_affinity.py folder:SET_A folder:SET_B ... [--images selection] [--limit N]

The SC-VAE paper clusters codes spectrally. What sparse codes have that colour has not is a
support, the set of atoms a cell uses; two cells of one surface should share atoms whatever their
brightness. Three pipelines, each the default but for the clustering (spectral, one embedding
serving every k of the vote, discretised by cluster_qr), side by side on the same images:
- `scvae[method=spectral]`: the rbf affinity on the default's features (codes, colour, position);
- `jaccard x rbf`: that rbf affinity times the Jaccard overlap of the two cells' supports
  |S_a & S_b| / |S_a | S_b| (cells that share no atom are not linked at all);
- `colour-pipeline[method=spectral]`: the rbf affinity on colour and position alone.
Printed per set: strict IoU and the paired per-image difference against the colour row (mean +-
standard error), then the mean over sets. `--images selection` (the default) scores each set's
selection subset (index % 3 == 0), `held-out` the other two thirds, `all` every image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from feature_maps import SUBSETS, finish_report, in_subset, set_scores  # noqa: E402


def jaccard(supports: np.ndarray) -> np.ndarray:
    """Jaccard overlap [N, N] of the rows of a boolean support matrix [N, K] (1 where both are empty)."""
    s = supports.astype(np.float64)
    shared = s @ s.T
    sizes = s.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - shared
    return np.where(union > 0, shared / np.maximum(union, 1e-12), 1.0)


def support_segmenter(extractor, settings, features):
    """The default SC-VAE segmenter whose spectral affinity is multiplied by the supports' overlap."""
    from segtool.pipeline.cluster import affinity_matrix, principal_projection, spectral_labels_from_affinity
    from segtool.pipeline.segmenters import SCVAESegmenter

    class SupportOverlapSegmenter(SCVAESegmenter):
        name = "scvae"  # the shipped scorer and everything else of the default

        def feature_grids(self, images):
            codes = self.extractor.extract(images)
            self._supports = [(z != 0).reshape(-1, z.shape[-1]) for z in codes]  # taken in order by finish
            return [self.features_from_codes(image, z) for image, z in zip(images, codes)]

        def finish(self, image, features, started):
            self._support = self._supports.pop(0)
            return super().finish(image, features, started)

        def cluster(self, features, ks=None):
            h, w, c = features.shape
            ks = list(ks or self.cfg.ks)
            flat = principal_projection(features.reshape(h * w, c), self.cfg.keep_variance)
            a = affinity_matrix(flat, "rbf", self.cfg.gamma_scale) * jaccard(self._support)
            np.fill_diagonal(a, 0.0)
            return {k: v.reshape(h, w) for k, v in spectral_labels_from_affinity(a, ks, self.cfg.seed).items()}

    return SupportOverlapSegmenter(extractor, settings, features)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="folder:PATH of each labelled set")
    parser.add_argument("--images", default="selection", choices=SUBSETS)
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per set")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    import dataclasses

    from segtool.data.readers import open_dataset
    from segtool.evaluation.metrics import score_mask
    from segtool.evaluation.protocol import iem_crop
    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.registry import build_segmenter, default_pipeline, parse_method

    extractor = load_extractor(None)
    cluster, code_cfg = default_pipeline()
    colour_label = "colour-pipeline[method=spectral]"
    segmenters = {
        "scvae[method=spectral]": build_segmenter(parse_method("scvae[method=spectral]"),
                                                  extractor_factory=lambda: extractor),
        "jaccard x rbf": support_segmenter(extractor, dataclasses.replace(cluster, method="spectral"), code_cfg),
        colour_label: build_segmenter(parse_method(colour_label)),
    }
    means: dict[str, list[float]] = {}
    report: dict = {"images": args.images, "sets": {}}
    for spec in args.datasets:
        reader = open_dataset(spec)
        samples = [(i, s) for i, s in enumerate(reader.samples()) if in_subset(i, args.images)][:args.limit]
        scores: dict[str, dict[int, float]] = {label: {} for label in segmenters}
        for start in range(0, len(samples), 16):
            chunk = samples[start:start + 16]
            crops = [iem_crop(*reader.load(s), 128, "bilinear") for _, s in chunk]
            for label, segmenter in segmenters.items():
                results = segmenter.segment_batch([image for image, _ in crops])
                for (index, _), (_, truth), result in zip(chunk, crops, results):
                    scores[label][index] = score_mask(result.mask, truth).iou
            print(f"  {reader.name}: {start + len(chunk)}/{len(samples)}", end="\r", file=sys.stderr)
        print(file=sys.stderr)
        print(f"{reader.name}: {len(samples)} images ({args.images}), strict IoU; paired difference against {colour_label}")
        report["sets"][reader.name] = set_scores(scores, colour_label, "vs_colour", means, width=34)
    finish_report(means, report, args.json, width=34)

if __name__ == "__main__":
    main()
