"""The `explore` commands: decode walks through code space (interpolate, traverse) and list the
atoms an image uses. Each image is the centre square crop at --size the model sees."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from segtool.errors import UsageError

explore_app = typer.Typer(no_args_is_help=True, help="Walk through the SC-VAE's code space: interpolation, atom "
                                                     "traversal, atom usage.")
MODEL_HELP = "A shipped model name or a checkpoint path (default: the shipped model)."
SIZE_HELP = "Short side resized to this, then the centre square crop (a multiple of the model's 2^d)."


@explore_app.command()
def interpolate(
    first: Path = typer.Argument(..., help="The image at t = 0."),
    second: Path = typer.Argument(..., help="The image at t = 1."),
    steps: int = typer.Option(8, "--steps", help="Decoded images from t = 0 to t = 1 (2 to 64)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The strip PNG (default: segtool-out/<a>_to_<b>.png)."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    size: int = typer.Option(256, "--size", help=SIZE_HELP),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
):
    """Decode linear interpolations between two images' code grids: a strip, the originals at its ends."""
    _check(size, device)
    if not 2 <= steps <= 64:
        raise UsageError(f"--steps {steps}: give 2 to 64 images")
    target = out or Path("segtool-out") / f"{first.stem}_to_{second.stem}.png"
    output, name = _output_file(target, [first, second])
    from segtool.analysis.codes import interpolation
    from segtool.analysis.montage import tile_rows

    model_net, a, b = _model_and_images(model, device, size, first, second)
    strip = tile_rows([[a, *interpolation(model_net, a, b, steps), b]])
    _say_written(output.write_png(name, strip))


@explore_app.command()
def traverse(
    image: Path = typer.Argument(..., help="The image whose codes are varied."),
    atom: List[int] = typer.Option([], "--atom", help="Atom index to vary (repeat for more rows; default: the "
                                                      "image's most used atom)."),
    value_range: str = typer.Option("-3:3", "--range", help="LOW:HIGH, in units of the image's mean code-vector length."),
    steps: int = typer.Option(7, "--steps", help="Values from LOW to HIGH (2 to 64)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The grid PNG (default: segtool-out/<stem>_traverse.png)."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    size: int = typer.Option(256, "--size", help=SIZE_HELP),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
):
    """Add v x (the image's mean code-vector length) to one atom at every cell and decode, for v across --range: one row per
    atom, the original first. Every cell, so the decoder shows what the atom draws in each part of the image; v = 0
    is the plain reconstruction."""
    _check(size, device)
    low, high = _parse_range(value_range)
    if not 2 <= steps <= 64:
        raise UsageError(f"--steps {steps}: give 2 to 64 values")
    output, name = _output_file(out or Path("segtool-out") / f"{image.stem}_traverse.png", [image])
    import numpy as np

    from segtool.analysis.codes import atom_usage, encode, traversal
    from segtool.analysis.montage import tile_rows
    from segtool.cli.progress import say

    net, picture = _model_and_images(model, device, size, image)
    atoms = list(atom) or [atom_usage(encode(net, picture))[0].atom]
    values = [float(v) for v in np.linspace(low, high, steps)]
    rows = []
    for a in atoms:
        try:
            decoded, scale = traversal(net, picture, a, values)
        except ValueError as exc:
            raise UsageError(f"--atom {a}: {exc}") from None
        say(f"atom {a}: unit {scale:.4g} (mean code-vector length); values {', '.join(f'{v:g}' for v in values)}")
        rows.append([picture, *decoded])
    _say_written(output.write_png(name, tile_rows(rows)))


@explore_app.command()
def atoms(
    image: Path = typer.Argument(..., help="The image whose codes are listed."),
    top: int = typer.Option(10, "--top", min=1, help="How many atoms to list."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    size: int = typer.Option(256, "--size", help=SIZE_HELP),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
):
    """The atoms an image uses most: mean |z| over its cells and the share of cells where each is active."""
    _check(size, device)
    from rich.console import Console
    from rich.table import Table

    from segtool.analysis.codes import atom_usage, encode
    from segtool.analysis.reconstruction import ACTIVE_THRESHOLD

    net, picture = _model_and_images(model, device, size, image)
    codes = encode(net, picture)
    usage = atom_usage(codes)
    h, w, k = codes.shape[1:]
    table = Table(title=f"{image.name}: top {min(top, k)} of {k} atoms",
                  caption=f"over {h}x{w} cells; active: |z| > {ACTIVE_THRESHOLD:g}")
    for column in ("atom", "mean |z|", "active cells %"):
        table.add_column(column, justify="right")
    for u in usage[:top]:
        table.add_row(str(u.atom), f"{u.mean_abs:.4f}", f"{100 * u.active_share:.1f}")
    Console().print(table)


def _check(size: int, device: str) -> None:
    from segtool.cli.options import check_device

    if not 16 <= size <= 1024:
        raise UsageError(f"--size {size}: give 16 to 1024 pixels")
    check_device(device)


def _parse_range(text: str) -> tuple[float, float]:
    import math

    try:
        low, high = (float(part) for part in text.split(":"))
    except ValueError:
        raise UsageError(f"--range {text!r}: give LOW:HIGH, e.g. -3:3") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise UsageError(f"--range {text!r}: LOW must be below HIGH, both finite")
    return low, high


def _output_file(path: Path, inputs: list[Path]):
    """(OutputDir of the file's folder, file name), refused now if the name belongs to a user's file."""
    from segtool.io.outputs import OutputDir

    if path.suffix.lower() != ".png":
        raise UsageError(f"--out {path}: give a .png file name")
    output = OutputDir(path.parent if str(path.parent) else Path("."), [], label="--out folder")
    output.check_free([path.name], {p.resolve() for p in inputs})
    return output, path.name


def _model_and_images(model: str | None, device: str, size: int, *paths: Path):
    """The loaded model and each image as its square crop; the size must suit the model's grid."""
    from segtool.analysis.image_sets import square_image
    from segtool.pipeline.models import load_model

    net = load_model(model, device)
    factor = net.config.downsample_factor
    if size % factor:
        raise UsageError(f"--size {size}: must be a multiple of {factor} for this model")
    return (net, *(square_image(p, size) for p in paths))


def _say_written(path: Path) -> None:
    from segtool.cli.progress import say

    say(f"wrote {path}")
