"""How much a one-pixel band at the ground-truth outline weighs in a dataset's scores.

Scores GrabCut's masks as they are, eroded by 1-2 px, and against the ground truth dilated by
1-2 px. On data annotated to the object's outline, erosion lowers IoU; a large gain instead
means the annotation leaves a band around each object (e.g. a void label mapped to background).

    .venv/bin/python bench/boundary_band.py folder:PATH [--stride 3]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    import cv2

    from segtool.data.readers import open_dataset
    from segtool.evaluation.metrics import iou
    from segtool.evaluation.protocol import iem_crop
    from segtool.pipeline.segmenters import GrabCutSegmenter

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--stride", type=int, default=3)
    args = parser.parse_args()

    reader = open_dataset(args.dataset, args.data_root)
    pairs = [iem_crop(*reader.load(s)) for s in reader.samples()[:: args.stride]]
    masks = GrabCutSegmenter().segment_batch([image for image, _ in pairs])
    kernel = np.ones((3, 3), np.uint8)

    def morph(op, m, n):
        return op(m.astype(np.uint8), kernel, iterations=n).astype(bool) if n else m

    print(f"{len(pairs)} images; GrabCut strict IoU (%)")
    for n in (0, 1, 2):
        score = np.mean([iou(morph(cv2.erode, r.mask, n), gt) for r, (_, gt) in zip(masks, pairs)])
        print(f"  prediction eroded by {n} px: {100 * score:5.1f}")
    for n in (1, 2):
        score = np.mean([iou(r.mask, morph(cv2.dilate, gt, n)) for r, (_, gt) in zip(masks, pairs)])
        print(f"  ground truth dilated by {n} px: {100 * score:5.1f}")


if __name__ == "__main__":
    main()
