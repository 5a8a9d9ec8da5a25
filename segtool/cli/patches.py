"""The `patches` command: dataset-wide clusters of patch codes -> patches.png, centres.npy, patches.json."""

from __future__ import annotations

import io
import json
from pathlib import Path

from segtool.cli.options import check_device
from segtool.cli.progress import progress_bar, say
from segtool.errors import UsageError

OUTPUT_NAMES = ("patches.png", "centres.npy", "patches.json")


def run_patches(folder: str, *, k: int = 50, per_cluster: int = 12, limit: int | None = None,
                out: Path = Path("segtool-out"), model: str | None = None, device: str = "auto", batch_size: int = 8,
                seed: int = 0) -> None:
    if not 2 <= k <= 10_000:
        raise UsageError(f"--k {k}: give 2 to 10000 clusters")
    if not 1 <= per_cluster <= 100:
        raise UsageError(f"--per-cluster {per_cluster}: give 1 to 100 patches")
    check_device(device)
    from segtool.analysis.image_sets import choose_images
    from segtool.io.outputs import OutputDir

    files = choose_images(folder, limit=limit)
    output = OutputDir(out, files, label="--out")  # never the folder an image is read from
    output.check_free(list(OUTPUT_NAMES), set())

    import numpy as np

    import scvae
    from segtool.analysis.patches import cluster_patches, patch_sheet
    from segtool.pipeline.models import load_extractor

    extractor = load_extractor(model, device=device, batch_size=batch_size)
    with progress_bar("patches") as bar:
        task = bar.add_task("fit", total=len(files))
        result = cluster_patches(files, extractor, k, per_cluster, batch_size, seed,
                                 progress=lambda stage, done: bar.update(task, description=stage, completed=done))
    sheet, rows = patch_sheet(result)
    buffer = io.BytesIO()
    np.save(buffer, result.centres)
    summary = {"model": model or scvae.DEFAULT_MODEL, "input_side": extractor.input_side, "patch_pixels": extractor.factor,
               **result.summary(), "rows_of_patches_png": rows}
    written = [output.write_png(OUTPUT_NAMES[0], sheet), output.write_bytes(OUTPUT_NAMES[1], buffer.getvalue()),
               output.write_bytes(OUTPUT_NAMES[2], (json.dumps(summary, indent=1) + "\n").encode())]
    for path, reason in result.failures:
        say(f"skipped {path}: {reason}")
    sizes = np.sort(result.counts)[::-1]
    say(f"{result.images} images, {result.cells} patches in {k} clusters (largest {sizes[0]}, median "
        f"{int(np.median(sizes))}, smallest {sizes[-1]} patches)")
    say("wrote " + ", ".join(str(p) for p in written))
