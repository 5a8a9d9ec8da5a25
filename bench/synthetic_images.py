"""Photo-like synthetic JPEGs for benchmarks that must run anywhere (no dataset, no network).

Each image is a colour gradient with a few soft blobs and sensor-like noise, saved as a JPEG at
quality 90, so decoding and resizing cost about what a photo of the same size costs.

    python bench/synthetic_images.py FOLDER [--count 256] [--size 500x375]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def write_synthetic_images(folder: str | Path, count: int, width: int = 500, height: int = 375, seed: int = 0) -> Path:
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy, xx = yy / max(1, height - 1), xx / max(1, width - 1)
    for i in range(count):
        image = (rng.uniform(0, 255, 3).astype(np.float32) * (0.4 + 0.6 * xx[..., None])
                 + rng.uniform(0, 60, 3).astype(np.float32) * yy[..., None])
        for _ in range(3):
            colour = rng.uniform(0, 255, 3).astype(np.float32)
            cy, cx, radius = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.25)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / np.float32(2 * radius ** 2))[..., None]
            image = image * (1 - blob) + colour * blob
        image += rng.standard_normal(image.shape, dtype=np.float32) * 6
        Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / f"synthetic_{i:05d}.jpg", quality=90)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--count", type=int, default=256)
    parser.add_argument("--size", default="500x375", help="WIDTHxHEIGHT")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    write_synthetic_images(args.folder, args.count, width, height, args.seed)


if __name__ == "__main__":
    main()
