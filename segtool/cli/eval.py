"""The `eval` command: options -> plan -> run -> rich table, results.csv, summary.json, noise plot."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from segtool.errors import Interrupted, UsageError

console = Console(stderr=True)
IMAGE_RESIZE = ("bilinear", "nearest")


def default_out_dir(names: list[str]) -> Path:
    """segtool-out/eval-<set>[+<set>...|+N-more]-<time>: set names whole, never cut mid-word."""
    names = [n.replace("/", "_").replace("\\", "_").strip("._") or "dataset" for n in names]
    safe = names[0]
    for i, name in enumerate(names[1:], start=1):
        if len(safe) + len(name) + 1 > 60:
            safe += f"+{len(names) - i}-more"
            break
        safe += "+" + name
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("segtool-out") / f"eval-{safe}-{stamp}"
    path, n = base, 2
    while path.exists():
        path, n = Path(f"{base}-{n}"), n + 1
    return path


def _screen() -> Console:
    screen = Console()
    if not screen.is_terminal:
        # A pipe or log file has no width: rich would assume 80 columns and cut method names to
        # "grabc…". At its natural width the table keeps every label whole.
        screen = Console(width=1000)
    return screen


def _score_table(title: str, results: list[dict], held_out: bool, first_col: str = "images"):
    from rich.table import Table

    from segtool.evaluation.runner import format_percent

    # Labels such as "scvae[k=3]" are escaped: rich would read the brackets as markup and drop them.
    table = Table(title=escape(title))
    columns = ["method", "noise", first_col, "IoU strict", "DICE strict", "IoU IEM", "DICE IEM", "boundary F",
               "fg choice ok", "s/image"]
    if held_out:
        columns[4:4] = ["IoU held-out"]
    for col in columns:
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in results:
        cells = [escape(r["method"]), f"{r['noise']:g}", str(r.get("sets", r["images"])), format_percent(r["iou"]),
                 format_percent(r["dice"]), format_percent(r["iem_iou"]), format_percent(r["iem_dice"]),
                 format_percent(r.get("boundary_f")), format_percent(r["foreground_choice_correct"]), f"{r['seconds_per_image']:.3f}"]
        if held_out:
            cells[4:4] = [format_percent((r.get("held_out") or {}).get("iou"))]
        table.add_row(*cells)
    return table


def _paired_table(summary: dict):
    from rich.table import Table

    table = Table(title=escape(f"paired per-image IoU difference against {summary['paired'][0]['against']} "
                               "(points, mean +- standard error; within 2 SE is no measured difference)"))
    held_out = any("held_out_iou" in p for p in summary["paired"])
    for col in ("set", "method", "noise", "images", "difference", "better on", "boundary F difference") + (
            ("held-out difference",) if held_out else ()):
        table.add_column(col, justify="left" if col in ("set", "method") else "right")

    def fmt(d):
        return "-" if d["mean"] is None else f"{100 * d['mean']:+.2f} +- {100 * (d['se'] or 0):.2f}"

    for p in summary["paired"]:
        cells = [escape(p["dataset"]), escape(p["method"]), f"{p['noise']:g}", str(p["iou"]["images"]), fmt(p["iou"]),
                 "-" if p["iou"]["better"] is None else f"{100 * p['iou']['better']:.0f}%",
                 fmt(p["boundary_f"]) if "boundary_f" in p else "-"]
        if held_out:
            cells.append(fmt(p["held_out_iou"]))
        table.add_row(*cells)
    return table


def print_summary(summary: dict) -> None:
    """One table per dataset; for a suite, the mean over sets; then the paired differences."""
    screen = _screen()
    held_out = bool(summary.get("held_out"))
    protocol = summary["protocol"]
    where = ("each image at its own size" if protocol["name"] == "native" else
             f"{protocol['size']}x{protocol['size']} crops, images {protocol['image_resize']}")
    for entry in summary["datasets"]:
        rows = [r for r in summary["results"] if r["dataset"] == entry["name"]]
        screen.print(_score_table(f"{entry['name']}: IoU / DICE (%), strict = the mask as given, IEM = better of mask "
                                  f"and inverse; boundary F within {protocol['boundary_tolerance_pixels']} px; "
                                  f"{where}", rows, held_out))
    if len(summary["datasets"]) > 1:
        screen.print(_score_table(f"mean over {len(summary['datasets'])} sets (each set counts once)",
                                  summary["mean_over_sets"], held_out, first_col="sets"))
    if summary.get("paired"):
        screen.print(_paired_table(summary))


def run_eval_command(datasets: str | list[str], *, data_root=None, k=None, method=None, refine=None, rule=None, methods="scvae",
                     compare=None, noise="0", limit=None, stride=1, out=None, resume=False, image_resize="bilinear",
                     model=None, device="auto", precision="auto", batch_size=32, workers=None, seed=0, cache=True, subset="all", shard=None, report=False,
                     save_masks=False, as_json=False, protocol="iem", cache_dir=None, quiet=False) -> dict:
    from segtool.cli.options import check_cache_dir, check_device, check_precision, parse_noise_levels, parse_shard, pipeline_options
    from segtool.pipeline.registry import parse_method_list
    from segtool.settings import EVAL_SUBSETS as SUBSETS
    if subset not in SUBSETS:
        raise UsageError(f"--subset {subset!r}: choose {', '.join(SUBSETS)}")
    if subset != "all" and stride != 1:
        raise UsageError("--subset and --stride cannot be combined: the subsets are defined on the full split")
    from segtool.settings import EVAL_PROTOCOLS as PROTOCOLS

    if protocol not in PROTOCOLS:
        raise UsageError(f"--protocol {protocol!r}: choose {' or '.join(PROTOCOLS)}")
    if image_resize not in IMAGE_RESIZE:
        raise UsageError(f"--image-resize {image_resize!r}: choose bilinear or nearest")
    levels = parse_noise_levels(noise)
    shard = parse_shard(shard)
    options = pipeline_options(k, method, refine, rule)
    check_device(device)
    check_precision(precision)
    if cache_dir is not None and not cache:
        raise UsageError("--cache-dir with --no-cache: the folder would not be used; drop one of them")
    if cache:
        check_cache_dir(cache_dir)
    specs = parse_method_list(methods) + parse_method_list(compare)
    if not specs:
        raise UsageError("no methods to evaluate: give --methods and/or --compare")
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        raise UsageError(f"a method is listed twice: {', '.join(labels)}")
    from segtool.data.readers import DatasetError, DatasetSpecError, benchmark_name, check_dataset_spec, open_dataset

    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    if not datasets:
        raise UsageError("no dataset to evaluate: give one or more of flowers, cub, isic, folder:PATH")
    for dataset in datasets:
        try:
            check_dataset_spec(dataset, data_root)
        except DatasetSpecError as exc:
            if not exc.missing_root:
                raise
            raise UsageError(f"{exc}; `segtool data fetch {exc.dataset}` downloads it there (`segtool data info "
                             f"{exc.dataset}` says what it holds), or pass --data-root DIR") from None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from segtool.evaluation.results import check_out_dir
    from segtool.evaluation.runner import EvalPlan, run_eval
    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.registry import build_segmenter, k_beyond_grid

    readers = []
    for dataset in datasets:
        try:
            readers.append(open_dataset(dataset, data_root))
        except DatasetError as exc:
            name = benchmark_name(dataset)
            if name is None:
                raise
            raise DatasetError(f"{exc}; `segtool data info {name}` shows the expected layout, `segtool data verify "
                               f"{name}` checks a copy") from None
    names = [reader.name for reader in readers]
    if len(set(names)) != len(names):
        raise UsageError(f"two datasets share a name ({', '.join(names)}): each set is named by its folder in the "
                         "results; give each a folder of its own name")
    out_dir = Path(out) if out else default_out_dir(names)
    if shard[1] > 1:
        out_dir = out_dir / f"shard-{shard[0]}-of-{shard[1]}"  # one command line serves every shard
    if out_dir.is_symlink() and not out_dir.exists():
        raise UsageError(f"--out {out_dir}: is a broken symbolic link or a link loop; choose another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir}: is a file; --out must be a folder")
    check_out_dir(out_dir, resume)

    def extractor():
        return load_extractor(model, device=device, precision=precision, batch_size=batch_size, cache=cache,
                              cache_dir=str(cache_dir) if cache_dir else None)

    segmenters = [(s.label, build_segmenter(s, extractor_factory=extractor, cli=options, workers=workers))
                  for s in specs]
    used_precision = None
    if any(hasattr(segmenter, "extractor") for _, segmenter in segmenters):
        from scvae.devices import pick_precision
        from segtool.pipeline.models import resolve_device

        used_precision = pick_precision(precision, resolve_device(device))
    plan = EvalPlan(readers, segmenters, levels, limit, stride=stride, image_resize=image_resize, seed=seed, batch_size=batch_size,
                    out_dir=out_dir, resume=resume, subset=subset, shard=shard, save_masks=save_masks,
                    protocol=protocol, precision=used_precision)
    for label, segmenter in segmenters:
        # Every evaluated image is the size x size protocol crop, so one check covers the run; without
        # it a too-large k stops the run at the first image with a bare ValueError.
        problem = k_beyond_grid(segmenter, plan.size, plan.size)
        if problem:
            raise UsageError(f"method {label}: {problem} at the {plan.size}x{plan.size} evaluation crop; "
                             "choose a smaller --k")
    from segtool.evaluation.runner import check_resume, plan_samples

    if resume:
        check_resume(plan)

    counts = ", ".join(f"{reader.name} {len(plan_samples(plan, reader))}" for reader in readers)
    if shard[1] > 1:
        counts += f" (shard {shard[0]}/{shard[1]}; merge the shards with 'segtool eval-merge {out_dir.parent}/shard-*')"
    sizes = "each image at its own size" if protocol == "native" else f"images resized {image_resize}, masks nearest"
    if not quiet:
        console.print(f"evaluating {escape(', '.join(labels))} on {escape(counts)} "
                      f"images (noise {', '.join(f'{n:g}' for n in levels)}); {sizes}; "
                      f"writing {escape(str(out_dir))}", highlight=False, soft_wrap=True)
    with Progress(TextColumn("[bold]eval"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, disable=quiet or not console.is_terminal) as bar:
        task = bar.add_task("eval", total=None)
        try:
            summary = run_eval(plan, progress=lambda done, total: bar.update(task, completed=done, total=total))
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted; the rows finished so far are kept in {out_dir / 'results.csv'}; "
                              "rerun the same command with --resume to continue") from None
    if as_json:
        from segtool.evaluation.runner import summary_json

        print(summary_json(summary), end="")
    else:
        print_summary(summary)
    if report:
        from segtool.evaluation.report import write_report

        console.print(escape(f"report: {write_report(plan, summary, out_dir)}"), highlight=False, soft_wrap=True)
    for entry in summary["datasets"]:
        if entry["empty_masks"]:
            shown = ", ".join(entry["empty_masks"][:3]) + (" ..." if len(entry["empty_masks"]) > 3 else "")
            console.print(escape(f"warning: {entry['name']}: {len(entry['empty_masks'])} ground-truth mask(s) are empty "
                                 f"({shown}); every prediction scores 0 on them. Masks are read as foreground where "
                                 "brighter than half their range, or where 1 in a 0/1 mask"), highlight=False,
                          soft_wrap=True)
    plots = "noise.png" if len(readers) == 1 else "noise-<set>.png"
    console.print(escape(f"per-image rows: {out_dir / 'results.csv'}; summary: {out_dir / 'summary.json'}"
                         + (f"; plot: {out_dir / plots}" if len(levels) > 1 else "")), highlight=False, soft_wrap=True)
    return summary


def run_merge_command(folders: list[Path], out: Path) -> dict:
    from segtool.evaluation.merge import merge_shards

    summary = merge_shards(folders, out)
    print_summary(summary)
    console.print(escape(f"merged {len(folders)} shards: {out / 'results.csv'}; summary: {out / 'summary.json'}"),
                  highlight=False, soft_wrap=True)
    return summary
