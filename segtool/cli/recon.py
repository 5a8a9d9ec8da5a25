"""The `recon` command: reconstruction quality of one or more models on the same images, as a
table on screen, recon.csv and recon_grid.png (originals beside each model's reconstructions)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from segtool.cli.options import check_device
from segtool.cli.progress import progress_bar, say
from segtool.errors import UsageError

CSV_NAME = "recon.csv"
GRID_NAME = "recon_grid.png"


def run_recon(spec: str, models: list[str], *, data_root: Path | None = None, holdout: int | None = None,
              limit: int | None = None, size: int = 256, out: Path = Path("segtool-out"),
              lpips_weights: Path | None = None, inception_weights: Path | None = None, device: str = "auto",
              batch_size: int = 16) -> None:
    if not 16 <= size <= 1024:
        raise UsageError(f"--size {size}: give 16 to 1024 pixels (the side of the square crop)")
    check_device(device)
    from segtool.analysis.image_sets import choose_images
    from segtool.io.outputs import OutputDir

    files = choose_images(spec, data_root, holdout, limit)
    output = OutputDir(out, files, label="--out")  # never the folder an image is read from
    output.check_free([CSV_NAME, GRID_NAME], set())

    from segtool.analysis.perceptual import inception_metric, lpips_metric
    from segtool.analysis.reconstruction import (ACTIVE_THRESHOLD, inception_features, recon_grid,
                                                 reconstruction_quality)

    networks = _load_models(models, device, size)   # a bad model or size fails before minutes of reading
    lpips, inception = lpips_metric(lpips_weights), inception_metric(inception_weights)
    results = []
    with progress_bar("recon") as bar:
        task = bar.add_task("reading", total=len(files))
        images = _read_squares(files, size, lambda done: bar.update(task, completed=done))
        reference = inception_features(inception, images, batch_size) if inception.available else None
        for label, model in networks:
            bar.update(task, description=label, completed=0)
            results.append(reconstruction_quality(model, label, images, batch_size, lpips, inception, reference,
                                                  progress=lambda done: bar.update(task, completed=done)))
    _print_table(results, spec, size)
    for metric in (lpips, inception):
        say(metric.source)
    if inception.available:
        say(f"rFID over {len(images)} images: biased upwards with few images (the paper's figures use 50,000)")
    say(f"active = share of code entries with |z| > {ACTIVE_THRESHOLD:g}; Hoyer sparsity averaged over code vectors")
    say(f"wrote {output.write_bytes(CSV_NAME, _csv_text(results).encode())} and "
        f"{output.write_png(GRID_NAME, recon_grid(images, results))}")


def _load_models(models: list[str], device: str, size: int) -> list[tuple[str, object]]:
    """(label, model) for each --model (the shipped default when none is named)."""
    import scvae
    from segtool.pipeline.models import load_model

    loaded = []
    for name in models or [None]:
        model = load_model(name, device)
        factor = model.config.downsample_factor
        if size % factor:
            raise UsageError(f"--size {size}: must be a multiple of {factor} for {name or 'the default model'}")
        loaded.append((name or scvae.DEFAULT_MODEL, model))
    return loaded


def _read_squares(files: list[Path], size: int, progress):
    import numpy as np

    from segtool.analysis.image_sets import square_image

    images = []
    for f in files:
        images.append(square_image(f, size))
        progress(len(images))
    return np.stack(images)


def _csv_text(results) -> str:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(results[0].row()))
    writer.writeheader()
    for r in results:
        writer.writerow({k: "n/a" if v is None else v for k, v in r.row().items()})
    return text.getvalue()


def _print_table(results, spec: str, size: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="reconstruction", caption=f"{results[0].images} images of {spec} at {size}x{size}")
    for column in ("model", "PSNR dB", "SSIM", "Hoyer", "active %", "LPIPS", "rFID"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        table.add_row(r.model, f"{r.psnr:.2f}", f"{r.ssim:.3f}", f"{r.hoyer:.3f}", f"{100 * r.active:.1f}",
                      "n/a" if r.lpips is None else f"{r.lpips:.3f}", "n/a" if r.rfid is None else f"{r.rfid:.1f}")
    Console().print(table)
