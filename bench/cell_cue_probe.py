"""Which per-cell cues tell object from background on each kind of image, before any clustering.

    .venv/bin/python bench/cell_cue_probe.py folder:SET_A folder:SET_B ... [--images selection] [--limit N]

For each image (the eval protocol's 128 x 128 crop) and each cue, the area under the ROC curve of
the cue's value on the 32 x 32 grid cells for object cells (ground truth covers more than half
the cell) against background cells: 0.5 is no information, above 0.5 the cue is higher on the
object, below it is higher on the background. Printed per set: the mean AUC over images and the
share of images where it is above 1/2. A cue worth giving the cluster scorer is away from 0.5 on
the same side on every kind. Then, pooled over cells, a logistic regression on the reference cues
(centre, saliency) against the same with each other cue added (its log ratio to the image's mean),
fit on the other sets and scored on each (leave one kind out): the AUC each cue adds to what the
scorer already has. Cues:
- centre: 1 - distance of the cell from the image centre (the centre prior; a reference);
- saliency: the RBD saliency vote per cell (the scorer's tenth cue; a reference);
- sharpness: mean |Laplacian| of the grey image over the cell (objects in focus, backgrounds blurred);
- code_l0: active atoms of the cell's sparse code (the model's own measure of detail);
- code_l1: the L1 norm of the cell's code;
- geodesic_codes: 1 - the geodesic background probability of the cell on the pipeline's feature
  grid (codes and colour; segtool.pipeline.foreground.rules.geodesic_background_probability:
  Zhu et al.'s boundary connectivity with geodesic areas along the grid, counting only feature
  steps larger than texture). A region reached from the border through a smooth gradient (a sky,
  vignetted skin) reads as background even when it is central and touches no border;
- geodesic_colour: the same on the cells' Lab colour alone;
- geodesic_colour16: the same on a grid of half the cells a side, repeated over the full grid
  (segtool.pipeline.foreground.geodesic_cue: the cluster scorer's eleventh cue);
- barrier_colour, barrier_colour16: the minimum barrier distance of the cell from the border
  (Strand et al. 2013; Zhang et al.'s MB+ saliency, ICCV 2015) on the cells' Lab colour, 32 x 32
  and 16 x 16: of all paths from the border to the cell, the one whose colour range (highest
  minus lowest, per channel, summed) is smallest, as a share of the image's largest. Unlike the
  geodesic distance, a long smooth gradient does not add up: what counts is the widest step
  of colour the path must climb, so a large object walled off by one clear outline reads as
  far from the border however much of the frame it fills.
- geodesic_lab16_u3, _u6, _u10: the eleventh cue's computation on the 16 x 16 grid's raw Lab colour,
  steps in fixed units of 3, 6 or 10 Lab units (less half a unit as texture) instead of the
  image's median step: a sky that shades smoothly across the frame, whose many small steps are
  each larger than the image's tiny median step, is then one region again.
- geodesic16_t0.25, _t1, _s1, _s4, geodesic12, geodesic24 and the pairs geodesic16_tT_sS: the
  eleventh cue with another texture allowance (0 to 1 median step, against 0.5), geodesic scale
  (1 to 4) or grid (12 x 12 or 24 x 24 for the 32 x 32 codes, against 16 x 16); geodesic16_s2 is
  the cue as it was first shipped, at scale 2 (the variants other than _sS keep scale 2).
`--cues` limits the run to some of them (the reference cues always run); `--reference` names the
cues the others must add to (default: centre and saliency).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from feature_maps import SUBSETS, in_subset  # noqa: E402

CUES = ("centre", "saliency", "sharpness", "code_l0", "code_l1", "geodesic_codes", "geodesic_colour", "geodesic_colour16",
        "barrier_colour", "barrier_colour16", "geodesic_lab16_u3", "geodesic_lab16_u6", "geodesic_lab16_u10")
# The eleventh cue's variants: name -> (grid side, texture allowance, geodesic scale).
VARIANTS = {"geodesic16_t0.25": (16, 0.25, 2.0), "geodesic16_t1": (16, 1.0, 2.0), "geodesic16_s1": (16, 0.5, 1.0),
            "geodesic16_s4": (16, 0.5, 4.0), "geodesic12": (12, 0.5, 2.0), "geodesic24": (24, 0.5, 2.0),
            "geodesic16_t0.25_s1": (16, 0.25, 1.0), "geodesic16_t0.25_s1.5": (16, 0.25, 1.5),
            "geodesic16_t0_s2": (16, 0.0, 2.0), "geodesic16_s1.5": (16, 0.5, 1.5), "geodesic16_s2": (16, 0.5, 2.0)}
CUES += tuple(VARIANTS)
REFERENCE = ("centre", "saliency")  # what the scorer already weighs, roughly
ABSOLUTE = ("centre", "saliency", "geodesic_codes", "geodesic_colour", "geodesic_colour16", "barrier_colour",
            "barrier_colour16", "geodesic_lab16_u3", "geodesic_lab16_u6", "geodesic_lab16_u10", *VARIANTS)  # on a fixed scale already: used as they are


def auc(values: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC of `values` for `positive` (Mann-Whitney, ties counted half); None when one class
    is missing."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(values)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def barrier_from_border(grid: np.ndarray, max_rounds: int = 30) -> np.ndarray:
    """Minimum barrier distance [h, w] of each cell of a grid [h, w, C] from the grid's border
    cells: per channel, the smallest (max - min) of the values along any 4-connected path from
    the border, summed over channels; by raster sweeps in the four directions until nothing moves
    (the approximation of Strand et al.: a path is kept by its own range, not re-chosen for the
    ranges it may lead to), then divided by the image's largest."""
    from segtool.pipeline.foreground.cues import border_cells

    h, w, c = grid.shape
    values = grid.astype(np.float64)
    border = border_cells(h, w)
    high, low = values.copy(), values.copy()
    distance = np.where(border[..., None], 0.0, np.inf) * np.ones(c)

    def relax(target, source):  # (row or column slices) the target cells through the source cells
        new_high = np.maximum(high[source], values[target])
        new_low = np.minimum(low[source], values[target])
        better = new_high - new_low < distance[target]
        distance[target] = np.where(better, new_high - new_low, distance[target])
        high[target] = np.where(better, new_high, high[target])
        low[target] = np.where(better, new_low, low[target])

    for _ in range(max_rounds):
        before = distance.copy()
        for x in range(1, w):
            relax(np.s_[:, x], np.s_[:, x - 1])
        for x in range(w - 2, -1, -1):
            relax(np.s_[:, x], np.s_[:, x + 1])
        for y in range(1, h):
            relax(np.s_[y], np.s_[y - 1])
        for y in range(h - 2, -1, -1):
            relax(np.s_[y], np.s_[y + 1])
        if np.array_equal(before, distance):
            break
    total = distance.sum(axis=-1)
    return total / total.max() if total.max() > 0 else total


def geodesic_fixed_unit(image: np.ndarray, h: int, w: int, unit: float) -> np.ndarray:
    """1 - the geodesic background probability on a grid of half the cells a side of raw mean Lab
    colour, steps in units of `unit` Lab units less half a unit, repeated over the h x w grid."""
    import cv2

    from segtool.pipeline.features import colour_grid
    from segtool.pipeline.foreground.geodesic_cue import (TEXTURE, _steps, all_pairs_along_steps,
                                                          background_probability_from_distances)

    lab = colour_grid(image, (h // 2, w // 2))
    objectness = 1 - background_probability_from_distances(all_pairs_along_steps(*_steps(lab, TEXTURE, unit)),
                                                           h // 2, w // 2)
    return cv2.resize(objectness.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)


def geodesic_variant(image: np.ndarray, h: int, w: int, side: int, texture: float, sigma: float) -> np.ndarray:
    """The eleventh cue on a side x side grid with its texture allowance and geodesic scale, on the h x w grid."""
    import cv2

    from segtool.pipeline.features import colour_grid, standardise
    from segtool.pipeline.foreground.geodesic_cue import geodesic_background_probability

    objectness = 1 - geodesic_background_probability(standardise(colour_grid(image, (side, side))), sigma=sigma,
                                                     texture=texture)
    return cv2.resize(objectness.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)


def cell_cues(image: np.ndarray, codes: np.ndarray, rbd, features: np.ndarray,
              wanted: tuple[str, ...] = CUES) -> dict[str, np.ndarray]:
    """The cues of every cell; `features` is the pipeline's feature grid of the image (codes and colour)."""
    import cv2

    from segtool.pipeline.features import colour_grid, standardise
    from segtool.pipeline.foreground.geodesic_cue import geodesic_objectness_grid
    from segtool.pipeline.foreground.rules import geodesic_background_probability
    from segtool.pipeline.saliency import saliency_cue_grid

    h, w = codes.shape[:2]
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=3))
    rows, cols = np.mgrid[0:h, 0:w]
    centre = 1 - np.hypot((rows + 0.5 - h / 2) / (h / 2), (cols + 0.5 - w / 2) / (w / 2))
    makers = {"centre": lambda: centre,
              "saliency": lambda: saliency_cue_grid(rbd, h, w),
              "sharpness": lambda: cv2.resize(lap, (w, h), interpolation=cv2.INTER_AREA),
              "code_l0": lambda: (codes != 0).sum(axis=-1).astype(np.float64),
              "code_l1": lambda: np.abs(codes).sum(axis=-1),
              "geodesic_codes": lambda: 1 - geodesic_background_probability(features),
              "geodesic_colour": lambda: 1 - geodesic_background_probability(standardise(colour_grid(image, (h, w)))),
              "geodesic_colour16": lambda: geodesic_objectness_grid(image, h, w),
              "barrier_colour": lambda: barrier_from_border(colour_grid(image, (h, w))),
              "barrier_colour16": lambda: cv2.resize(barrier_from_border(colour_grid(image, (h // 2, w // 2))).astype(np.float32),
                                                     (w, h), interpolation=cv2.INTER_NEAREST),
              **{f"geodesic_lab16_u{u}": (lambda u=u: geodesic_fixed_unit(image, h, w, u)) for u in (3, 6, 10)},
              **{name: (lambda v=v: geodesic_variant(image, h, w, *v)) for name, v in VARIANTS.items()}}
    return {name: makers[name]() for name in wanted}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="folder:PATH of each labelled set")
    parser.add_argument("--images", default="selection", choices=SUBSETS)
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per set")
    parser.add_argument("--cues", default=",".join(CUES), help=f"comma-separated, of: {', '.join(CUES)}")
    parser.add_argument("--reference", default=",".join(REFERENCE), help="the cues every other must add to")
    args = parser.parse_args(argv)
    asked = [c.strip() for c in args.cues.split(",") if c.strip()]
    reference = tuple(c.strip() for c in args.reference.split(",") if c.strip())
    unknown = [c for c in asked + list(reference) if c not in CUES]
    if unknown:
        parser.error(f"unknown cue(s) {', '.join(unknown)}; choose from {', '.join(CUES)}")
    cues = reference + tuple(c for c in CUES if c in asked and c not in reference)

    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.registry import build_segmenter, parse_method
    from segtool.pipeline.saliency import rbd_on_work_copy

    extractor = load_extractor(None, cache=True)
    pipeline = build_segmenter(parse_method("scvae"), extractor_factory=lambda: extractor)
    pooled = probe_sets(args.datasets, args.images, args.limit, extractor, cues,
                        lambda image, z: cell_cues(image, z, rbd_on_work_copy(image),
                                                   pipeline.features_from_codes(image, z), cues),
                        lambda name, grid: relative(grid) if name not in ABSOLUTE else np.asarray(grid).ravel())
    if len(pooled) > 1:
        leave_one_kind_out(pooled, cues, reference)


def probe_sets(datasets: list[str], images: str, limit, extractor, cues: tuple[str, ...], grids_of,
               pooled_value=lambda name, grid: np.asarray(grid, np.float64).ravel()) -> dict[str, tuple[list, list]]:
    """Per set, print each cue's mean per-image AUC (and the share of images above 1/2), where
    grids_of(image, codes) gives {cue: grid}; returns the pooled cells {set: (rows, object)},
    each row the cues' pooled_value(name, grid), for leave_one_kind_out."""
    from segtool.data.readers import open_dataset

    pooled: dict[str, tuple[list, list]] = {}
    print(f"per-image ROC AUC of each cell cue for object against background cells ({images} images): "
          "mean, and the share of images above 1/2")
    print(f"  {'set':22s} " + "  ".join(f"{c:>17s}" for c in cues))
    for spec in datasets:
        reader = open_dataset(spec)
        samples = [s for i, s in enumerate(reader.samples()) if in_subset(i, images)][:limit]
        aucs: dict[str, list[float]] = {c: [] for c in cues}
        pooled[reader.name] = ([], [])
        for image, z, positive in labelled_grids(reader, samples, extractor):
            grids = grids_of(image, z)
            for name in cues:
                value = auc(np.asarray(grids[name], np.float64).ravel(), positive)
                if value is not None:
                    aucs[name].append(value)
            pooled[reader.name][0].append(np.stack([pooled_value(c, grids[c]) for c in cues], axis=1))
            pooled[reader.name][1].append(positive)
        cells = [f"{np.mean(v):.3f} ({100 * np.mean(np.array(v) > 0.5):3.0f}%)" for v in aucs.values()]
        print(f"  {reader.name:22s} " + "  ".join(f"{c:>17s}" for c in cells))
    return pooled


def labelled_grids(reader, samples, extractor):
    """(image, codes [h, w, K], object cells [h * w] bool) of each sample at the eval protocol's
    128 x 128 crop, encoded 32 at a time; a cell is object when the mask covers more than half of it."""
    import cv2

    from segtool.evaluation.protocol import iem_crop

    for start in range(0, len(samples), 32):
        crops = [iem_crop(*reader.load(s), 128, "bilinear") for s in samples[start:start + 32]]
        codes = extractor.extract([image for image, _ in crops])
        for (image, truth), z in zip(crops, codes):
            h, w = z.shape[:2]
            positive = cv2.resize(truth.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA).ravel() > 0.5
            yield image, z, positive
        print(f"  {reader.name}: {start + len(crops)}/{len(samples)}", end="\r", file=sys.stderr)
    print(file=sys.stderr)


def leave_one_kind_out(pooled: dict[str, tuple[list, list]], cues: tuple[str, ...] = CUES,
                       reference_cues: tuple[str, ...] = REFERENCE) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    data = {name: (np.concatenate(x), np.concatenate(y)) for name, (x, y) in pooled.items()}
    reference = [cues.index(c) for c in reference_cues]
    extras = [c for c in cues if c not in reference_cues]
    print(f"pooled cell AUC, fit without the set (logistic regression): the reference cues ({', '.join(reference_cues)}), "
          "then the gain of each added cue")
    print(f"  {'set':22s} {'reference':>10s} " + " ".join(f"{'+' + c:>11s}" for c in extras))
    for name in data:
        train_x = np.concatenate([x for other, (x, _) in data.items() if other != name])
        train_y = np.concatenate([y for other, (_, y) in data.items() if other != name])
        test_x, test_y = data[name]

        def score(columns):
            mean, scale = train_x[:, columns].mean(axis=0), train_x[:, columns].std(axis=0) + 1e-12
            model = LogisticRegression(max_iter=1000).fit((train_x[:, columns] - mean) / scale, train_y)
            return roc_auc_score(test_y, model.decision_function((test_x[:, columns] - mean) / scale))

        base = score(reference)
        gains = [score(reference + [cues.index(c)]) - base for c in extras]
        print(f"  {name:22s} {base:10.3f} " + " ".join(f"{g:+11.3f}" for g in gains))


def relative(grid: np.ndarray) -> np.ndarray:
    """log(value / the image's mean value) per cell: a cue on the image's own scale."""
    values = np.asarray(grid, np.float64).ravel()
    return np.log((values + 1e-6) / (values.mean() + 1e-6))


if __name__ == "__main__":
    main()
