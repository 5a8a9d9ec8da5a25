"""The figures of docs/PAPER.md made from scikit-image's sample photos (the only ones that may be
committed), by running the segtool commands themselves, then saved small as JPEG.

    .venv/bin/python bench/paper_figures.py            # -> docs/figures/paper/*.jpg (about 10 s a figure on 2 cores)

Figures from the shared data sets (recon on ImageNet, patches on photos-unlabelled) are made by
the commands in docs/PAPER.md into segtool-out/, never into the repository (their licences).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "docs" / "figures" / "paper"
SAMPLES = ("astronaut", "chelsea", "coffee", "immunohistochemistry", "rocket")


def segtool(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "segtool.cli.app", *args], check=True)


def main() -> None:
    from PIL import Image
    from skimage import data

    sys.path.insert(0, str(REPO / "bench"))
    from gallery import save_jpeg

    work = Path(tempfile.mkdtemp(prefix="segtool-paper-"))
    photos = work / "photos"
    photos.mkdir()
    for name in SAMPLES:
        Image.fromarray(getattr(data, name)()).save(photos / f"{name}.png")
    out = work / "out"
    segtool("recon", str(photos), "--size", "128", "--out", str(out))
    segtool("explore", "interpolate", str(photos / "chelsea.png"), str(photos / "coffee.png"), "--steps", "6",
            "--size", "128", "--out", str(out / "interpolate.png"))
    segtool("explore", "traverse", str(photos / "astronaut.png"), "--steps", "5", "--size", "128",
            "--out", str(out / "traverse.png"))
    segtool("segment", str(photos / "coffee.png"), "--parts", "5", "--out", str(out))

    import numpy as np

    def read(name: str) -> np.ndarray:
        return np.asarray(Image.open(out / name).convert("RGB"))

    save_jpeg(read("recon_grid.png"), FIGURES / "recon_grid_skimage.jpg")
    save_jpeg(read("interpolate.png"), FIGURES / "interpolate_chelsea_coffee.jpg")
    save_jpeg(read("traverse.png"), FIGURES / "traverse_astronaut.jpg")
    parts = np.concatenate([read("coffee_parts.png"), np.full((400, 8, 3), 255, np.uint8),
                            read("coffee_parts_overlay.png")], axis=1)
    save_jpeg(parts, FIGURES / "parts_coffee.jpg", max_side=608)
    print(f"wrote {FIGURES}")


if __name__ == "__main__":
    main()
