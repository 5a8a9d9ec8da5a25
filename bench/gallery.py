"""A gallery of the default pipeline's masks: overlays to look at, as a person judges them.

    .venv/bin/python bench/gallery.py                      # scikit-image's sample photos -> docs/gallery.md
    .venv/bin/python bench/gallery.py folder:../shared/data/ecssd-dev --every 50 --out segtool-out/gallery-ecssd

Without a dataset it segments the colour photos scikit-image ships (astronaut, chelsea, coffee,
rocket, hubble_deep_field, immunohistochemistry, retina, colorwheel) and writes their overlays,
downscaled, to docs/figures/gallery/ with docs/gallery.md beside them. With a dataset it writes every
N-th image's overlay with its ground-truth outline (green) to --out, never into the repository:
the shared sets' licences do not allow it. No setting was chosen by looking at these images.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "colorwheel")
MAX_SIDE = 360   # the committed overlays stay small


def save_jpeg(array: np.ndarray, path: Path, max_side: int | None = None) -> None:
    from PIL import Image

    image = Image.fromarray(array)
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=85)


def outline(image: np.ndarray, mask: np.ndarray, colour=(40, 220, 60)) -> np.ndarray:
    import cv2

    out = image.copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, max(1, round(min(image.shape[:2]) / 200)))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", nargs="?", help="folder:PATH (images/ + masks/); default: scikit-image's photos")
    parser.add_argument("--every", type=int, default=50, help="with a dataset: every N-th image")
    parser.add_argument("--method", default="scvae", help="a method spec, e.g. 'scvae[scorer=scvae-flowers]'")
    parser.add_argument("--out", default=None, help="output folder (default docs/figures/gallery, or segtool-out/gallery)")
    args = parser.parse_args(argv)
    if args.every < 1:
        sys.exit("gallery: --every must be at least 1")

    from segtool.errors import SegtoolError
    from segtool.io.outputs import overlay_image
    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.registry import build_segmenter, parse_method

    try:
        segmenter = build_segmenter(parse_method(args.method), extractor_factory=load_extractor)
    except SegtoolError as exc:
        sys.exit(f"gallery: {exc}")
    if args.dataset:
        from segtool.data.readers import open_dataset

        out = Path(args.out or "segtool-out/gallery")
        if out.resolve().is_relative_to(REPO.resolve()) and not out.resolve().is_relative_to((REPO / "segtool-out").resolve()):
            sys.exit("gallery: a dataset's gallery is never written into the repository (licences); use segtool-out/")
        try:
            reader = open_dataset(args.dataset)
            samples = reader.samples()[:: args.every]
        except SegtoolError as exc:
            sys.exit(f"gallery: {exc}")
        for sample in samples:
            image, truth = reader.load(sample)
            mask = segmenter.segment(image).mask
            save_jpeg(outline(overlay_image(image, mask), truth), out / f"{sample.id}.jpg")
        print(f"{len(samples)} overlays (red: the mask, green: the ground truth's outline) -> {out}")
        return

    import skimage.data

    out = Path(args.out or REPO / "docs" / "figures" / "gallery")
    rows = []
    for name in SAMPLES:
        image = getattr(skimage.data, name)()[..., :3]
        result = segmenter.segment(image)
        save_jpeg(overlay_image(image, result.mask), out / f"{name}.jpg", MAX_SIDE)
        rows.append((name, image.shape, result.foreground_fraction))
        print(f"{name}: foreground {100 * result.foreground_fraction:.1f}%", file=sys.stderr)
    page = REPO / "docs" / "gallery.md"
    lines = ["# Gallery: the default pipeline on scikit-image's sample photos", "",
             f"Made by `python bench/gallery.py` (method `{args.method}`, the shipped model). Outline and tint: "
             "the mask `segtool segment` writes (in the colour that contrasts most with the subject); nothing here was used to choose or fit anything. The shared labelled sets get "
             "the same treatment with `python bench/gallery.py folder:SET --every 50` (written to segtool-out/, "
             "not committed: their licences do not allow it). Floating-point rounding differs between CPUs, "
             "so a mask made on another machine can differ (the README's Results give an example).", "",
             "| photo | size | foreground | overlay |", "|---|---|---|---|"]
    for name, shape, fraction in rows:
        rel = Path("figures/gallery") / f"{name}.jpg"
        lines.append(f"| `{name}` | {shape[1]}x{shape[0]} | {100 * fraction:.1f}% | ![{name}]({rel.as_posix()}) |")
    page.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(rows)} overlays -> {out}; page: {page}")


if __name__ == "__main__":
    main()
