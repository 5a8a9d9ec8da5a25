"""`make demo`: segment a sample photo with the shipped default model.

The sample is scikit-image's `chelsea` (a cat, public domain), written to the output folder
first so the demo needs nothing but the installed packages.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="segtool-out/demo")
    args = parser.parse_args(argv)
    from PIL import Image
    from skimage import data

    out = Path(args.out)
    sample_dir = out / "input"
    sample_dir.mkdir(parents=True, exist_ok=True)
    sample = sample_dir / "chelsea.png"
    Image.fromarray(data.chelsea()).save(sample)
    from segtool.cli.app import main as cli_main

    cli_main(["segment", str(sample), "--out", str(out), "-v"])  # -v: the foreground share and the files written
    return 0


if __name__ == "__main__":
    sys.exit(main())
