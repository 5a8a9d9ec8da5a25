"""The `eval` command: options -> plan -> run -> rich table, results.csv, summary.json, noise plot."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from .errors import UsageError

console = Console(stderr=True)
IMAGE_RESIZE = ("bilinear", "nearest")


def default_out_dir(dataset: str) -> Path:
    safe = dataset.replace("folder:", "folder-").replace("/", "_").replace("\\", "_").strip("._") or "dataset"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("segtool-out") / f"eval-{safe[:40]}-{stamp}"
    path, n = base, 2
    while path.exists():
        path, n = Path(f"{base}-{n}"), n + 1
    return path


def print_summary(summary: dict) -> None:
    from rich.table import Table

    from .evaluate import format_percent

    table = Table(title=f"{summary['dataset']}: IoU / DICE (%), strict = the mask as given, "
                        f"IEM = better of mask and inverse; images {summary['protocol']['image_resize']}")
    for col in ("method", "noise", "images", "IoU strict", "DICE strict", "IoU IEM", "DICE IEM", "fg choice ok",
                "s/image"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in summary["results"]:
        table.add_row(r["method"], f"{r['noise']:g}", str(r["images"]), format_percent(r["iou"]),
                      format_percent(r["dice"]), format_percent(r["iem_iou"]), format_percent(r["iem_dice"]),
                      format_percent(r["foreground_choice_correct"]), f"{r['seconds_per_image']:.3f}")
    Console().print(table)


def run_eval_command(dataset: str, *, data_root=None, k=None, method=None, refine=None, methods="scvae",
                     compare=None, noise="0", limit=None, out=None, resume=False, image_resize="bilinear",
                     model=None, device="auto", batch_size=32, seed=0, cache=True) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .datasets import open_dataset
    from .evaluate import EvalPlan, run_eval
    from .methods import build_segmenter, parse_method_list
    from .models import load_extractor
    from .noise import parse_noise_levels
    from .segment_cmd import pipeline_options

    if image_resize not in IMAGE_RESIZE:
        raise UsageError(f"--image-resize {image_resize!r}: choose bilinear or nearest")
    try:
        levels = parse_noise_levels(noise)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    options = pipeline_options(k, method, refine)
    specs = parse_method_list(methods) + parse_method_list(compare)
    if not specs:
        raise UsageError("no methods to evaluate: give --methods and/or --compare")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise UsageError(f"a method is listed twice: {', '.join(labels)}")
    reader = open_dataset(dataset, data_root)
    out_dir = Path(out) if out else default_out_dir(dataset)
    if (out_dir / "results.csv").is_file() and not resume:
        raise UsageError(f"--out {out_dir} already holds results.csv: add --resume to continue it, or choose another --out")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: is a file; --out must be a folder")

    def extractor():
        return load_extractor(model, device=device, batch_size=batch_size, cache=cache)

    segmenters = [(s.label, build_segmenter(s, extractor_factory=extractor, cli=options)) for s in specs]
    plan = EvalPlan(reader, segmenters, levels, limit, image_resize=image_resize, seed=seed, batch_size=batch_size,
                    out_dir=out_dir, resume=resume)
    console.print(f"evaluating {', '.join(labels)} on {reader.name} ({len(reader.samples()) if limit is None else limit} "
                  f"images, noise {', '.join(f'{n:g}' for n in levels)}); images resized {image_resize}, masks nearest; "
                  f"writing {out_dir}", highlight=False)
    with Progress(TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("eval", total=None)
        summary = run_eval(plan, progress=lambda done, total: bar.update(task, completed=done, total=total))
    print_summary(summary)
    console.print(f"per-image rows: {out_dir / 'results.csv'}; summary: {out_dir / 'summary.json'}"
                  + (f"; plot: {out_dir / 'noise.png'}" if len(levels) > 1 else ""), highlight=False)
    return summary
