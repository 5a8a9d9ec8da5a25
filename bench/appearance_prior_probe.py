"""Does what a cell looks like, learnt from photos without masks, tell object from background?

    .venv/bin/python bench/appearance_prior_probe.py folder:SET_A folder:SET_B ... \
        --photos ../shared/data/photos-unlabelled [--photo-stride 4] [--images selection]

Every cue the scorer weighs comes from where a cell is (the border, the centre) or from how it
differs from the rest of its own image. A large object that fills the frame touches the border
and fills the centre, so those cues call it background. An appearance prior asks instead what
kind of stuff the cell is: across many photos, sky, grass, walls, water and skin around a mole
sit at the borders, and people, animals and things sit in the middle. It is learnt without a
mask: on each unlabelled photo (the eval protocol's 128 x 128 crop), cells near the centre
(normalised radius under --inner) are one class and the outer ring of cells (--ring wide) the
other; a logistic regression on what the cell looks like tells them apart. Two versions, so
that the codes sit beside colour:
- appearance_codes: the cell's sparse code (its 256 atom coefficients, as the model gives them);
- appearance_colour: the cell's mean Lab colour, as a soft histogram over a 6 x 8 x 8 grid of Lab
  bins (a linear model on it can be any function of the colour).
Then, on the labelled sets, as bench/cell_cue_probe.py does: each cue's per-image AUC for object
against background cells, and the AUC it adds, pooled over cells and fit without the scored set,
to the reference cues (centre, saliency and the geodesic cue: what the scorer already has).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cell_cue_probe import cell_cues, leave_one_kind_out, probe_sets  # noqa: E402
from feature_maps import SUBSETS  # noqa: E402

REFERENCE = ("centre", "saliency", "geodesic_colour16")
PRIORS = ("appearance_codes", "appearance_colour")
LAB_BINS = (6, 8, 8)
LAB_RANGE = ((0.0, 100.0), (-60.0, 80.0), (-60.0, 80.0))


def colour_histogram_features(lab: np.ndarray) -> np.ndarray:
    """[h, w, 3] mean Lab -> [h * w, bins]: each cell's colour spread linearly over its nearest
    bin centres along each axis (a soft one-hot), so that nearby colours share weights."""
    cells = lab.reshape(-1, 3).astype(np.float64)
    per_axis = []
    for axis, (n, (low, high)) in enumerate(zip(LAB_BINS, LAB_RANGE)):
        position = np.clip((cells[:, axis] - low) / (high - low) * (n - 1), 0, n - 1)
        lower = np.floor(position).astype(int)
        upper = np.minimum(lower + 1, n - 1)
        weight_upper = position - lower
        onehot = np.zeros((len(cells), n))
        onehot[np.arange(len(cells)), lower] += 1 - weight_upper
        onehot[np.arange(len(cells)), upper] += weight_upper
        per_axis.append(onehot)
    a, b, c = per_axis
    return np.einsum("ni,nj,nk->nijk", a, b, c).reshape(len(cells), -1)


def appearance_features(image: np.ndarray, codes: np.ndarray) -> dict[str, np.ndarray]:
    from segtool.pipeline.features import colour_grid

    h, w = codes.shape[:2]
    return {"appearance_codes": codes.reshape(h * w, -1).astype(np.float64),
            "appearance_colour": colour_histogram_features(colour_grid(image, (h, w)))}


def centre_and_ring(h: int, w: int, inner: float, ring: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:h, 0:w]
    radius = np.hypot((rows + 0.5 - h / 2) / (h / 2), (cols + 0.5 - w / 2) / (w / 2))
    outer = (rows < ring) | (rows >= h - ring) | (cols < ring) | (cols >= w - ring)
    return (radius < inner).ravel(), outer.ravel()


def fit_priors(photos: str, stride: int, limit, extractor, inner: float, ring: int) -> dict:
    """{prior: (mean, scale, logistic model)} fit on the unlabelled photos' centre against ring cells."""
    from sklearn.linear_model import LogisticRegression

    from segtool.evaluation.protocol import iem_crop
    from segtool.io.images import image_files_under, load_image

    paths = image_files_under(Path(photos))[::stride][:limit]
    rows: dict[str, list] = {p: [] for p in PRIORS}
    labels = []
    for start in range(0, len(paths), 32):
        images = []
        for path in paths[start:start + 32]:
            image = load_image(path)
            images.append(iem_crop(image, np.zeros(image.shape[:2], bool))[0])
        for image, z in zip(images, extractor.extract(images)):
            centre, outer = centre_and_ring(*z.shape[:2], inner, ring)
            keep = centre | outer
            for name, x in appearance_features(image, z).items():
                rows[name].append(x[keep])
            labels.append(centre[keep])
        print(f"  photos: {min(start + 32, len(paths))}/{len(paths)}", end="\r", file=sys.stderr)
    print(file=sys.stderr)
    y = np.concatenate(labels)
    priors = {}
    for name in PRIORS:
        x = np.concatenate(rows[name])
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
        model = LogisticRegression(max_iter=2000, C=0.1).fit((x - mean) / scale, y)
        priors[name] = (mean, scale, model)
        print(f"prior {name}: fit on {len(y)} cells of {len(paths)} photos ({y.mean():.0%} centre), "
              f"training accuracy {model.score((x - mean) / scale, y):.3f}")
    return priors


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+", help="folder:PATH of each labelled set")
    parser.add_argument("--photos", required=True, help="a folder of unlabelled photos (never an evaluation set)")
    parser.add_argument("--photo-stride", type=int, default=4)
    parser.add_argument("--photo-limit", type=int, default=None)
    parser.add_argument("--inner", type=float, default=0.45, help="normalised radius of the centre class")
    parser.add_argument("--ring", type=int, default=3, help="cells of the outer ring, the border class")
    parser.add_argument("--images", default="selection", choices=SUBSETS)
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per set")
    args = parser.parse_args(argv)

    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.saliency import rbd_on_work_copy

    extractor = load_extractor(None, cache=True)
    priors = fit_priors(args.photos, args.photo_stride, args.photo_limit, extractor, args.inner, args.ring)
    cues = REFERENCE + PRIORS

    def grids_of(image: np.ndarray, z: np.ndarray) -> dict[str, np.ndarray]:
        grids = dict(cell_cues(image, z, rbd_on_work_copy(image), None, REFERENCE))
        for name, x in appearance_features(image, z).items():
            mean, scale, model = priors[name]
            grids[name] = model.decision_function((x - mean) / scale)
        return grids

    pooled = probe_sets(args.datasets, args.images, args.limit, extractor, cues, grids_of)
    if len(pooled) > 1:
        leave_one_kind_out(pooled, cues, REFERENCE)


if __name__ == "__main__":
    main()
