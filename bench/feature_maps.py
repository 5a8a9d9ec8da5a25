"""Which of the model's feature maps segments best, each beside the same pipeline on colour.

    .venv/bin/python bench/feature_maps.py folder:SET_A folder:SET_B ... \
        [--features codes,prelista,mid,level2,codes+mid] [--colour-weights 1,2] [--images selection]

One encoder pass per image (the shipped precision, as `segtool eval` runs it) gives every map:
- codes:    the sparse codes Z, what the default pipeline clusters ([32, 32, K]);
- prelista: the encoder's output E(x) before sparse coding ([32, 32, n]);
- mid:      the encoder's last feature map before its output layer ([32, 32, channels]);
- level2:   the feature map after the second downsampling (64 x 64), average-pooled to 32 x 32;
- a+b:      maps side by side.
`--whiten 0.1,1` adds each map whitened by a transform fitted once on unlabelled photos
(`--fit-photos FOLDER`, never an evaluation set), not per image: (C + a m I)^(-1/2) (x - mean),
C the map's covariance over the photos' cells, m its mean eigenvalue, a each value given (the
shrinkage; small a equalises every direction, large a leaves the map nearly as it was). The raw
codes' distances are ruled by their few strongest directions; whitening gives the weak atoms,
where texture rather than colour may live, an equal say.
Each map goes through the default pipeline unchanged (standardised, Lab colour at each
`--colour-weights` value, position, the vote, the shipped cluster scorer, the saliency vote and
the cut). Printed per set: strict IoU of each, and its paired per-image difference against
`colour-pipeline` (mean +- standard error); then the mean over sets. A difference within about
two standard errors is not a measured difference. `--images selection` (the default) scores each
set's selection subset (index % 3 == 0), `held-out` the other two thirds, `all` every image.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

MAPS = ("codes", "prelista", "mid", "level2")
SUBSETS = ("selection", "held-out", "all")


def parse_features(text: str) -> list[tuple[str, ...]]:
    """'codes,codes+mid' -> [('codes',), ('codes', 'mid')]; unknown names are refused."""
    out = []
    for item in text.split(","):
        parts = tuple(p.strip() for p in item.split("+") if p.strip())
        unknown = [p for p in parts if p not in MAPS]
        if not parts or unknown:
            raise ValueError(f"--features: {item!r}: each map must be one of {', '.join(MAPS)}")
        out.append(parts)
    return out


def in_subset(index: int, subset: str) -> bool:
    return subset == "all" or (index % 3 == 0) == (subset == "selection")


class FeatureMaps:
    """Every map of MAPS for a batch of images, from one pass of the extractor's model (its
    precision and input size), caught with forward hooks so the model's code is not repeated."""

    def __init__(self, extractor):
        from scvae.modules import Downsample

        self.extractor = extractor
        encoder = extractor.model.encoder
        self._caught: dict = {}
        downsamplings = [m for m in encoder.down if isinstance(m, Downsample)]
        if len(downsamplings) < 2:
            raise ValueError("level2 needs an encoder with at least two downsamplings")
        # The extractor encodes in batches: each hook keeps every batch's output, in order.
        self._hooks = [
            encoder.mid.register_forward_hook(lambda m, i, o: self._caught.setdefault("mid", []).append(o)),
            encoder.conv_out.register_forward_hook(lambda m, i, o: self._caught.setdefault("prelista", []).append(o)),
            downsamplings[1].register_forward_hook(lambda m, i, o: self._caught.setdefault("level2", []).append(o)),
        ]

    def __call__(self, images: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
        import torch
        import torch.nn.functional as F

        sizes = {self.extractor.input_size(*image.shape[:2]) for image in images}
        if len(sizes) > 1:  # the extractor would batch by size, out of the images' order
            raise ValueError("feature maps: give images of one size (the eval protocol's crops are)")
        self._caught.clear()
        # The extractor's own pass (no cache, so the hooks fire): its codes are the shipped ones.
        codes = self.extractor.extract(images)
        grid = codes[0].shape[:2]
        out = {"codes": codes}
        for name, batches in self._caught.items():
            value = torch.cat(batches).float()
            if value.shape[-2:] != grid:
                value = F.adaptive_avg_pool2d(value, grid)
            out[name] = list(value.permute(0, 2, 3, 1).cpu().numpy())
        return out


def photo_crops(folder: str, n: int, size: int = 128) -> list[np.ndarray]:
    """Every len/n-th photo of a folder, cropped as the eval protocol crops a labelled image."""
    from pathlib import Path

    from segtool.evaluation.protocol import iem_crop
    from segtool.io.images import image_files_under, load_image

    if not Path(folder).is_dir():
        raise ValueError(f"--fit-photos {folder}: not a folder")
    paths = image_files_under(Path(folder))
    if not paths:
        raise ValueError(f"--fit-photos {folder}: no images there")
    crops = []
    for path in paths[::max(1, len(paths) // n)][:n]:
        image = load_image(path)
        crops.append(iem_crop(image, np.zeros(image.shape[:2], bool), size)[0])
    return crops


def fit_whitening(grids: list[np.ndarray], shrinkage: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean [C], W [C, C]) with W = (cov + shrinkage x mean eigenvalue x I)^(-1/2), over every cell."""
    cells = np.concatenate([g.reshape(-1, g.shape[-1]) for g in grids]).astype(np.float64)
    mean = cells.mean(axis=0)
    centred = cells - mean
    values, vectors = np.linalg.eigh(centred.T @ centred / len(cells))
    values = np.maximum(values, 0.0) + shrinkage * max(float(values.mean()), 1e-12)
    return mean, (vectors / np.sqrt(values)) @ vectors.T


class GivenGrids:
    """An extractor stand-in that hands the pipeline grids computed elsewhere."""

    def __init__(self, factor: int, input_size):
        self.factor = factor
        self.input_size = input_size
        self.grids: list[np.ndarray] = []

    def extract(self, images):
        return self.grids


def whiten(grid: np.ndarray, fit: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    if fit is None:
        return grid
    mean, transform = fit
    return ((grid.reshape(-1, grid.shape[-1]) - mean) @ transform).reshape(grid.shape).astype(np.float32)


def set_scores(scores: dict[str, dict[int, float]], reference: str, key: str, means: dict[str, list[float]],
               width: int = 32) -> dict:
    """Print one set's strict IoU per method and its paired per-image difference against
    `reference` (mean +- standard error); add each mean to `means`; return the set's report."""
    from segtool.evaluation.runner import paired_difference

    out = {}
    for label, values in scores.items():
        d = paired_difference(scores[reference], values)
        mean = 100 * float(np.mean(list(values.values())))
        means.setdefault(label, []).append(mean)
        out[label] = {"images": len(values), "iou": mean, key: {"mean": 100 * d["mean"], "se": 100 * d["se"]}}
        versus = "" if label == reference else f"   {100 * d['mean']:+6.2f} +- {100 * d['se']:.2f}"
        print(f"  {label:{width}s} {mean:5.1f}{versus}")
    return out


def finish_report(means: dict[str, list[float]], report: dict, json_path: str | None, width: int = 32) -> None:
    """The mean over sets (when there are several), and the report written to `json_path`."""
    if len(report["sets"]) > 1:
        print("mean over sets:")
        for label, values in means.items():
            print(f"  {label:{width}s} {np.mean(values):5.1f}")
    if json_path:
        import json
        from pathlib import Path

        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="folder:PATH of each labelled set")
    parser.add_argument("--features", default="codes,prelista,mid,level2")
    parser.add_argument("--colour-weights", default="1", help="comma-separated colour weights (the default's is 1)")
    parser.add_argument("--images", default="selection", choices=SUBSETS)
    parser.add_argument("--model", default=None, help="a shipped model name or checkpoint folder (default: shipped)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per set")
    parser.add_argument("--batch-size", type=int, default=16, help="images per encoder pass")
    parser.add_argument("--whiten", default="", help="comma-separated shrinkages a: add each map whitened (see above)")
    parser.add_argument("--fit-photos", default=None, help="unlabelled photos the whitening is fitted on")
    parser.add_argument("--fit-images", type=int, default=400, help="photos used for the fit")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    try:
        features = parse_features(args.features)
        weights = [float(v) for v in args.colour_weights.split(",") if v.strip()]
    except ValueError as exc:
        sys.exit(f"feature_maps: {exc}")
    if not weights or any(not np.isfinite(w) or w < 0 for w in weights):
        sys.exit("feature_maps: --colour-weights must be finite numbers >= 0")
    try:
        shrinkages = [float(v) for v in args.whiten.split(",") if v.strip()]
    except ValueError:
        sys.exit("feature_maps: --whiten must be comma-separated numbers > 0")
    if any(not np.isfinite(a) or a <= 0 for a in shrinkages):
        sys.exit("feature_maps: --whiten must be comma-separated numbers > 0")
    if shrinkages and not args.fit_photos:
        sys.exit("feature_maps: --whiten needs --fit-photos (unlabelled photos, never an evaluation set)")

    import dataclasses

    from segtool.data.readers import open_dataset
    from segtool.evaluation.metrics import score_mask
    from segtool.evaluation.protocol import iem_crop
    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.registry import build_segmenter, default_pipeline, parse_method
    from segtool.pipeline.segmenters import SCVAESegmenter

    if args.batch_size < 1:
        sys.exit("feature_maps: --batch-size must be at least 1")
    extractor = load_extractor(args.model, batch_size=args.batch_size)
    maps = FeatureMaps(extractor)
    cluster, code_cfg = default_pipeline()
    whitenings: dict = {}  # (map, shrinkage) -> (mean, W)
    if shrinkages:
        try:
            photos = photo_crops(args.fit_photos, args.fit_images)
        except ValueError as exc:
            sys.exit(f"feature_maps: {exc}")
        fitted: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(photos), args.batch_size):
            for name, grids in maps(photos[start:start + args.batch_size]).items():
                fitted.setdefault(name, []).extend(grids)
        for name in {p for parts in features for p in parts}:
            for a in shrinkages:
                whitenings[name, a] = fit_whitening(fitted[name], a)
        print(f"whitening fitted on {len(photos)} photos of {args.fit_photos}", file=sys.stderr)
    variants = {}
    for parts in features:
        for a in [None, *shrinkages]:
            for w in weights:
                stand_in = GivenGrids(extractor.factor, extractor.input_size)
                label = "+".join(parts) + (f" (white a={a:g})" if a is not None else "") + \
                    (f" (colour x{w:g})" if w != code_cfg.colour_weight else "")
                variants[label] = (parts, a, stand_in,
                                   SCVAESegmenter(stand_in, cluster, dataclasses.replace(code_cfg, colour_weight=w)))
    colour = build_segmenter(parse_method("colour-pipeline"))

    means: dict[str, list[float]] = {}
    report: dict = {"images": args.images, "sets": {}}
    for spec in args.datasets:
        reader = open_dataset(spec)
        samples = [(i, s) for i, s in enumerate(reader.samples()) if in_subset(i, args.images)][:args.limit]
        scores: dict[str, dict[int, float]] = {label: {} for label in [*variants, "colour-pipeline"]}
        for start in range(0, len(samples), 32):
            chunk = samples[start:start + 32]
            crops = [iem_crop(*reader.load(s), 128, "bilinear") for _, s in chunk]
            images = [image for image, _ in crops]
            grids = maps(images)
            for parts, a, stand_in, _ in variants.values():
                stand_in.grids = [np.concatenate([whiten(grids[p][j], whitenings.get((p, a))) for p in parts], axis=-1)
                                  for j in range(len(images))]
            runs = [(label, seg) for label, (_, _, _, seg) in variants.items()]
            for label, seg in [*runs, ("colour-pipeline", colour)]:
                for (index, _), (_, truth), result in zip(chunk, crops, seg.segment_batch(images)):
                    scores[label][index] = score_mask(result.mask, truth).iou
            print(f"  {reader.name}: {start + len(chunk)}/{len(samples)}", end="\r", file=sys.stderr)
        print(file=sys.stderr)
        print(f"{reader.name}: {len(samples)} images ({args.images}), strict IoU; paired difference against "
              "colour-pipeline")
        report["sets"][reader.name] = set_scores(scores, "colour-pipeline", "vs_colour_pipeline", means)
    finish_report(means, report, args.json)


if __name__ == "__main__":
    main()
