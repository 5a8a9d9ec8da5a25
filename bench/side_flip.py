"""Would turning a mask inside out, when it looks like the wrong side, pay? An image-level check.

    .venv/bin/python bench/side_flip.py RUN [--method scvae] [--thresholds 0.5,0.6,0.7]

RUN is a `segtool eval` of folder sets made with `--save-masks` on all images (selection and
held-out). For each image it reads the saved mask at the protocol crop and describes it by what
needs no mask to compute: the share of the crop called foreground, the share of the frame's
border inside it, how much more of the centre than of the rest it covers, and the mean RBD
saliency and geodesic objectness inside it less outside. A logistic regression on those, each
kind weighing the same, fit on the selection subsets, predicts "the inverted mask would score
better"; where it says so above a threshold, the mask is inverted. Printed per set, held-out
images only: IoU, the wrong side's share, the IoU an oracle that inverts exactly the wrong-side
masks would reach (the ceiling of any such check), then the paired change from the learnt check
fit on every kind and fit without the kind it is scored on (leave one kind out).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from feature_maps import in_subset  # noqa: E402

def mask_features(image: np.ndarray, mask: np.ndarray) -> list[float]:
    import cv2

    from segtool.pipeline.foreground.cues import border_cells
    from segtool.pipeline.foreground.geodesic_cue import geodesic_objectness_grid
    from segtool.pipeline.saliency import cue_work_copy, rbd

    h, w = mask.shape
    copy = cue_work_copy(image)
    saliency = cv2.resize(rbd(copy).pixel_saliency().astype(np.float32), (w, h))
    geodesic = cv2.resize(geodesic_objectness_grid(copy, 16, 16).astype(np.float32), (w, h),
                          interpolation=cv2.INTER_NEAREST)
    border = border_cells(h, w)
    rows, cols = np.mgrid[0:h, 0:w]
    centre = ((rows + 0.5 - h / 2) / (h / 2)) ** 2 + ((cols + 0.5 - w / 2) / (w / 2)) ** 2 <= 0.5

    def inside_less_outside(values: np.ndarray) -> float:
        if mask.all() or not mask.any():
            return 0.0
        return float(values[mask].mean() - values[~mask].mean())

    return [float(mask.mean()), float(mask[border].mean()), float(mask[centre].mean() - mask[~centre].mean()),
            inside_less_outside(saliency), inside_less_outside(geodesic)]


def read_run(run: Path, method: str):
    """(set, is selection, features, IoU of the mask, IoU of its inverse) per image of the run."""
    from PIL import Image

    from segtool.data.readers import open_dataset
    from segtool.evaluation.protocol import iem_crop

    record = json.loads((run / "run.json").read_text())
    scored = {(r["dataset"], r["id"]) for r in csv.DictReader(open(run / "results.csv"))
              if r["method"] == method and float(r["noise"]) == 0}
    images = []
    for name, root in record["datasets"].items():
        reader = open_dataset(f"folder:{root}")
        for index, sample in enumerate(reader.samples()):
            if (name, sample.id) not in scored:
                continue
            image, truth = iem_crop(*reader.load(sample), record["size"], record["image_resize"])
            truth = truth.astype(bool)
            mask = np.asarray(Image.open(run / "masks" / name / method / "sigma-0" / f"{sample.id}.png")) > 127

            def iou(a):
                return float((a & truth).sum() / max((a | truth).sum(), 1))

            images.append((name, in_subset(index, "selection"), mask_features(image, mask), iou(mask), iou(~mask)))
            print(f"  {name}: {index + 1}", end="\r", file=sys.stderr)
    print(file=sys.stderr)
    return images


def fitted_check(names, features, wrong, train):
    """P(the inverse is better) from a logistic regression on the rows in `train`, each set weighing the same."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = features[train].mean(axis=0), features[train].std(axis=0) + 1e-9
    weight = np.zeros(int(train.sum()))
    for name in set(names[train]):
        weight[names[train] == name] = 1.0 / (names[train] == name).sum()
    model = LogisticRegression(max_iter=1000).fit((features[train] - mean) / scale, wrong[train],
                                                  sample_weight=weight * len(weight))
    return lambda x: model.predict_proba((x - mean) / scale)[:, 1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--method", default="scvae")
    parser.add_argument("--thresholds", default="0.5,0.6,0.7")
    args = parser.parse_args(argv)
    thresholds = [float(t) for t in args.thresholds.split(",")]

    images = read_run(args.run, args.method)
    names = np.array([i[0] for i in images])
    selection = np.array([i[1] for i in images])
    features = np.array([i[2] for i in images])
    iou, inverse = np.array([i[3] for i in images]), np.array([i[4] for i in images])
    wrong = inverse > iou
    sets = list(dict.fromkeys(names))
    print(f"held-out images, strict IoU of {args.method}:")
    for name in sets:
        held = (names == name) & ~selection
        print(f"  {name:22s} {held.sum():4d} images  IoU {100 * iou[held].mean():5.1f}  wrong side "
              f"{100 * wrong[held].mean():4.1f}%  inverting exactly those: {100 * np.maximum(iou, inverse)[held].mean():5.1f}")
    checks = {"fit on every kind": {name: fitted_check(names, features, wrong, selection) for name in sets},
              "leave one kind out": {name: fitted_check(names, features, wrong, selection & (names != name))
                                     for name in sets}}
    for label, per_set in checks.items():
        print(f"learnt check, {label}: paired change per held-out image (inverted masks)")
        for threshold in thresholds:
            cells = []
            for name in sets:
                held = (names == name) & ~selection
                flip = per_set[name](features[held]) > threshold
                change = 100 * (np.where(flip, inverse[held], iou[held]) - iou[held])
                cells.append(f"{name} {change.mean():+.2f} +- {change.std() / np.sqrt(held.sum()):.2f} ({flip.sum()})")
            print(f"  above {threshold:.2f}: " + " | ".join(cells))


if __name__ == "__main__":
    main()
