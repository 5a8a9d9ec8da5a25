"""The command line: parses arguments and calls library functions, nothing more.

Heavy libraries (torch, sklearn, cv2, datasets) are imported inside the commands so that
`segtool --help` answers at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from segtool.cli.options import PRECISION_HELP, WORKERS_HELP
from segtool.locations import CACHE_ROOT_TEXT

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Unsupervised image segmentation with an SC-VAE backbone.")


def _print_version(value: bool) -> None:
    if value:
        from segtool import __version__

        typer.echo(f"segtool {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_print_version,
                                          help="Print the version and exit.")) -> None:
    """Unsupervised image segmentation with an SC-VAE backbone."""
from segtool.cli.data import data_app  # noqa: E402  (typer only; heavy imports live inside the commands)

from segtool.cli.explore import explore_app  # noqa: E402

app.add_typer(data_app, name="data")
app.add_typer(explore_app, name="explore")

DEBUG_ENV = "SEGTOOL_DEBUG"


@app.command()
def segment(
    paths: List[str] = typer.Argument(..., metavar="IMAGE...", help="Image files, folders (their images) or globs such as 'photos/*.jpg'; "
                                                "'-' reads one image from standard input (outputs stdin_mask.png, ...)."),
    k: Optional[int] = typer.Option(None, "--k", "-k", help="Clusters per image (default: the measured pipeline default)."),
    method: Optional[str] = typer.Option(None, "--clustering", "--method", help="Clustering algorithm: kmeans | spectral (--method is the older name)."),
    refine: Optional[str] = typer.Option(None, "--refine", help="Refinement at full resolution: none (the default) | grabcut."),
    rule: Optional[str] = typer.Option(None, "--rule", help="Foreground rule: scored (the default) | simple | geodesic; the last two need no learnt weights."),
    model: Optional[str] = typer.Option(None, "--model", help="A shipped model name or a checkpoint path (default: the shipped model)."),
    out: Path = typer.Option(Path("segtool-out"), "--out", "-o", help="Output folder for <stem>_mask/_overlay/_clusters.png; "
                             "'-' writes the mask PNG (the cut-out with --cutout) of one image to standard output."),
    only_mask: bool = typer.Option(False, "--only-mask", help="Write only <stem>_mask.png."),
    cutout: bool = typer.Option(False, "--cutout", help="Also write <stem>_cutout.png: the image as RGBA, background transparent."),
    watch: bool = typer.Option(False, "--watch", help="Segment the images of one folder that have no outputs yet, then each "
                               "new or changed image as it lands, until Ctrl-C."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary; failures are still reported."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="A line per image: name, foreground %, seconds, mask file."),
    json_: bool = typer.Option(False, "--json", help="Print per-image results as JSON on stdout."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    max_pixels: int = typer.Option(100_000_000, "--max-pixels", min=1, help="Refuse images with more pixels (decompression bombs)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Images encoded together."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, max=256, show_default="the cores, at most 8",
                                          help=WORKERS_HELP),
    cache: Optional[bool] = typer.Option(None, "--cache/--no-cache", show_default="off; on with --cache-dir",
                                         help="Cache codes on disk (keyed by model and image): rerunning on the same "
                                              "images skips the model."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", show_default=CACHE_ROOT_TEXT,
                                             help="Cache root; codes go under PATH/codes/."),
    parts: Optional[int] = typer.Option(None, "--parts", help="Instead of a mask: N regions from one K-means on the codes "
                                        "(+ colour and position, as the pipeline clusters), no foreground choice; writes "
                                        "<stem>_parts.png and _parts_overlay.png (--out -: the part map of one image). (_clusters.png shows the clustering the "
                                        "mask was chosen from, background clusters darkened.)"),
):
    """Segment images: writes a 0/255 mask, an overlay and a cluster map per image."""
    from segtool.cli.segment import run_segment

    code = run_segment(paths, k=k, method=method, refine=refine, rule=rule, model=model, out=out, as_json=json_, device=device,
                       precision=precision, max_pixels=max_pixels, batch_size=batch_size, workers=workers, only_mask=only_mask, cutout=cutout, quiet=quiet,
                       verbose=verbose, watch=watch, cache=cache, cache_dir=cache_dir,
                       parts=parts)
    raise typer.Exit(code)


@app.command("eval")
def eval_(
    datasets: List[str] = typer.Argument(..., metavar="DATASET...", help="One or more of flowers | cub | isic | folder:PATH (images/ + masks/ "
                                         "with the same stems); several make a suite: a table per set, the mean over "
                                         "sets, paired differences. A mask's foreground: brighter than half its "
                                         "range, or 1 in a mask of 0s and 1s."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where the dataset lives (flowers, cub, isic)."),
    k: Optional[int] = typer.Option(None, "--k", "-k", help="Clusters per image for the pipeline methods "
                                                            "(default: a vote over k = 6, 8, 12)."),
    method: Optional[str] = typer.Option(None, "--clustering", "--method", help="Clustering algorithm: kmeans | spectral (--method is the older name)."),
    refine: Optional[str] = typer.Option(None, "--refine", help="none (the default) | grabcut"),
    rule: Optional[str] = typer.Option(None, "--rule", help="Foreground rule: scored (the default) | simple | geodesic."),
    methods: str = typer.Option("scvae", "--methods", help="Comma-separated methods to run, e.g. 'scvae,scvae[k=3]'."),
    compare: Optional[str] = typer.Option(None, "--compare", help="Baselines run in the same harness: grabcut,rbd,colour,colour-pipeline,ellipse."),
    noise: str = typer.Option("0", "--noise", help="Gaussian noise sigma(s) on [0,1] images, e.g. 0,0.1,0.2,0.3."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N test images (fixed order)."),
    stride: int = typer.Option(1, "--stride", min=1, help="Every N-th test image."),
    subset: str = typer.Option("all", "--subset", help="all | selection (every third image: where settings are "
                                                       "chosen and scorers fit) | held-out (the other two thirds)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: a new folder under segtool-out/)."),
    resume: bool = typer.Option(False, "--resume", help="Skip images already in --out's results.csv."),
    protocol: str = typer.Option("iem", "--protocol", help="iem (the default: short side to 128, centre 128x128 crop, "
                                 "as published tables) | native (each image and mask at its own size, no resize or crop)."),
    image_resize: str = typer.Option("bilinear", "--image-resize", help="bilinear (default) | nearest (the IEM reference code)."),
    model: Optional[str] = typer.Option(None, "--model", help="A shipped model name or a checkpoint path."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Images per batch."),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, max=256, show_default="the cores, at most 8",
                                          help=WORKERS_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed of the noise."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Cache codes on disk (keyed by model, image, noise)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/N: only every N-th image from the I-th (0 <= I < N), "
                                        "written to OUT/shard-I-of-N; 'auto' takes I/N from torchrun's RANK/WORLD_SIZE. "
                                        "Combine the shards with 'segtool eval-merge'."),
    report: bool = typer.Option(False, "--report", help="Also write OUT/report.html: the tables, the noise curves, and "
                                "each method's best, median and worst image (image, truth, mask)."),
    save_masks: bool = typer.Option(False, "--save-masks", help="Save every mask as OUT/masks/<set>/<method>/sigma-<s>/<id>.png."),
    json_: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout instead of the tables."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no start line (errors and tables still)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", show_default=CACHE_ROOT_TEXT,
                                             help="Cache root; codes go under PATH/codes/."),
):
    """Evaluate on a benchmark with the IEM protocol: strict and IEM IoU/DICE per method and noise level."""
    from segtool.cli.eval import run_eval_command

    run_eval_command(datasets, data_root=data_root, k=k, method=method, refine=refine, rule=rule, methods=methods, compare=compare,
                     noise=noise, limit=limit, stride=stride, out=out, resume=resume, image_resize=image_resize, model=model,
                     device=device, precision=precision, batch_size=batch_size, workers=workers, seed=seed, cache=cache, cache_dir=cache_dir, subset=subset, shard=shard,
                     report=report, save_masks=save_masks, as_json=json_, protocol=protocol,
                     quiet=quiet)


@app.command("eval-merge")
def eval_merge(
    folders: List[Path] = typer.Argument(..., metavar="SHARD_FOLDER...", help="The output folders of every shard of one 'segtool eval --shard I/N' run."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the merged results.csv, run.json and summary.json."),
):
    """Merge the shards of one eval run into the results.csv and summary.json the unsharded run gives."""
    from segtool.cli.eval import run_merge_command

    run_merge_command(list(folders), out)


@app.command()
def train(
    recipe: str = typer.Argument(..., help="A shipped recipe name (small-cpu, imagenet, ffhq, ...) or a path to a YAML recipe."),
    set_: List[str] = typer.Option([], "--set", help="Override a recipe entry, e.g. --set model.d=4 --set train.lr=2e-4."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder of training images (data.root)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default: the recipe's `out`)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many optimiser steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in the run directory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the model, parameter counts and settings; train nothing."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    allow_cpu: bool = typer.Option(False, "--allow-cpu", help="Train a recipe meant for GPUs (meant_for: gpu) on the CPU anyway."),
):
    """Train an SC-VAE from a recipe, on CPU, one GPU, or many under torchrun."""
    from segtool.cli.train import run_training

    path = run_training(recipe, list(set_), str(data_root) if data_root else None, str(out) if out else None,
                        max_steps, resume, dry_run, device, allow_cpu=allow_cpu)
    if path is not None:
        typer.echo(f"final checkpoint: {path}")


@app.command()
def recon(
    images: str = typer.Argument(..., help="A folder of images (subfolders included, sorted by path), folder:PATH, "
                                           "or flowers | cub | isic (their test images, with --data-root)."),
    model: List[str] = typer.Option([], "--model", help="A shipped model name or checkpoint path; repeat to compare "
                                                        "models (default: the shipped model)."),
    holdout: Optional[int] = typer.Option(None, "--holdout", min=1, help="Only the last N images: what training holds "
                                          "out of a folder (the shipped model: --holdout 50 of imagenet-sample)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N of those images."),
    size: int = typer.Option(256, "--size", help="Short side resized to this, centre crop of size x size."),
    out: Path = typer.Option(Path("segtool-out"), "--out", "-o", help="Folder for recon.csv and recon_grid.png."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where flowers, cub or isic live."),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights", help="An LPIPS network saved with "
                                                 "torch.export.save: (x, y) in [-1, 1] -> distance."),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights", help="An Inception network saved "
                                                     "with torch.export.save: images in [0, 1] -> features, for rFID."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Images per forward pass."),
):
    """Reconstruction quality: PSNR, SSIM, code sparsity (and LPIPS, rFID when their networks are here) per model."""
    from segtool.cli.recon import run_recon

    run_recon(images, list(model), data_root=data_root, holdout=holdout, limit=limit, size=size, out=out,
              lpips_weights=lpips_weights, inception_weights=inception_weights, device=device, batch_size=batch_size)


@app.command()
def patches(
    folder: str = typer.Argument(..., help="A folder of images (subfolders included, sorted by path)."),
    k: int = typer.Option(50, "--k", "-k", help="Clusters of patch codes."),
    per_cluster: int = typer.Option(12, "--per-cluster", help="Patches shown per cluster (a random sample)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N images."),
    out: Path = typer.Option(Path("segtool-out"), "--out", "-o", help="Folder for patches.png, centres.npy, patches.json."),
    model: Optional[str] = typer.Option(None, "--model", help="A shipped model name or a checkpoint path."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Images encoded (and fed to MiniBatchKMeans) together."),
    seed: int = typer.Option(0, "--seed", help="Seed of the clustering and of the patch sample."),
):
    """Dataset-wide clusters of patch codes (MiniBatchKMeans over a stream of images) and sample patches of each."""
    from segtool.cli.patches import run_patches

    run_patches(folder, k=k, per_cluster=per_cluster, limit=limit, out=out, model=model, device=device,
                batch_size=batch_size, seed=seed)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on: 127.0.0.1 is this machine only; "
                                                         "0.0.0.0 every interface (no authentication!)."),
    port: int = typer.Option(7860, "--port", min=0, max=65535, help="Port to listen on (0: any free port, printed)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Segmentations run at the same time."),
    queue: int = typer.Option(8, "--queue", min=0, max=10_000, help="Requests that may wait for a free worker; "
                                                                    "more are answered 503 with a Retry-After."),
    queue_wait: float = typer.Option(10.0, "--queue-wait", help="Seconds a request waits for a worker before 503."),
    max_upload_mb: float = typer.Option(20.0, "--max-upload-mb", help="Larger uploads are answered 413."),
    max_pixels: int = typer.Option(100_000_000, "--max-pixels", min=1, help="Refuse images with more pixels "
                                                                           "(decompression bombs)."),
    method: str = typer.Option("scvae", "--method", help="The segmentation method of the registry, with optional "
                                                         "settings: scvae, colour-pipeline, scvae\\[k=3], ..."),
    model: Optional[str] = typer.Option(None, "--model", help="A shipped model name or a checkpoint path "
                                                              "(default: the shipped model)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
):
    """Serve a local HTTP API (POST /segment, GET /health) and a page to drop images on."""
    from segtool.cli.serve import run_serve

    raise typer.Exit(run_serve(host=host, port=port, workers=workers, queue=queue, queue_wait=queue_wait,
                               max_upload_mb=max_upload_mb, max_pixels=max_pixels, method=method, model=model,
                               device=device))


# Expected failures and their exit codes (-1: the error's own); anything else is a bug and keeps its
# traceback. Named by module so that reporting a bad option never imports torch: an error of a
# module that was never imported cannot have been raised.
ERROR_TYPES = (("segtool.errors", "SegtoolError", -1), ("scvae.checkpoint", "CheckpointError", 1),
               ("scvae.training.trainer", "TrainingDiverged", 1), ("segtool.training.recipe", "RecipeError", 2),
               ("segtool.training.dataconfig", "TrainingDataError", 1), ("builtins", "FileExistsError", 2))


def _error_types():
    table: list[tuple[type, int]] = []
    for module, name, code in ERROR_TYPES:
        loaded = sys.modules.get(module)
        if loaded is not None and hasattr(loaded, name):
            table.append((getattr(loaded, name), code))
    return table


def _parser_exceptions():
    """(ClickException, NoArgsIsHelpError) of the click the installed typer parses with: typer >= 0.20
    vendors its own copy (`typer._click`), whose exceptions are not `click`'s, so catching
    `click.ClickException` would let every bad option escape as a traceback."""
    try:
        from typer._click import exceptions as parser_errors
    except ImportError:
        from click import exceptions as parser_errors
    return parser_errors.ClickException, getattr(parser_errors, "NoArgsIsHelpError", ())


def _list_registered_methods(command) -> None:
    """`eval --help` names every method of the registry as it is when the command runs, so a
    method added with one registry line shows up without touching this file."""
    from segtool.pipeline.registry import method_names

    names = ", ".join(method_names())
    eval_command = getattr(command, "commands", {}).get("eval")
    for param in getattr(eval_command, "params", []):
        if param.name == "compare":
            param.help = f"Baselines run in the same harness, comma-separated; methods: {names}."
        elif param.name == "methods":
            param.help = f"Comma-separated methods to run (first = the reference of the paired differences); methods: {names}."


def main(argv: Optional[list[str]] = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        args.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
    debug = os.environ.get(DEBUG_ENV) == "1"
    command = typer.main.get_command(app)
    _list_registered_methods(command)
    click_error, no_args_help = _parser_exceptions()
    try:
        code = command.main(args=args, prog_name="segtool", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click_error as exc:
        if no_args_help and isinstance(exc, no_args_help):
            exc.show()  # `segtool` alone: the help text
        else:
            # One line, like every other segtool error; click's own format spans four.
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            typer.echo(f"segtool: error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("segtool: aborted", err=True)
        sys.exit(130)
    except Exception as exc:
        _report(exc, debug)


def _report(exc: Exception, debug: bool) -> None:
    trainer = sys.modules.get("scvae.training.trainer")
    if trainer is not None and isinstance(exc, trainer.TrainingInterrupted):
        where = f"checkpoint saved to {exc.checkpoint}; " if exc.checkpoint else ""
        if os.environ.get("RANK", "0") == "0":
            typer.echo(f"segtool: interrupted at step {exc.step}; {where}rerun with --resume to continue", err=True)
        sys.exit(130)
    from segtool.errors import Interrupted

    devices = sys.modules.get("scvae.devices")
    if devices is not None and isinstance(exc, devices.DeviceError):  # the library names the setting; the command line names its flag
        typer.echo(f"segtool: error: --{exc}", err=True)
        sys.exit(2)
    models = sys.modules.get("segtool.pipeline.models")
    if models is not None and isinstance(exc, models.MissingDefaultModel):
        typer.echo(f"segtool: error: {exc} with --model PATH", err=True)
        sys.exit(1)
    if isinstance(exc, Interrupted):
        typer.echo(f"segtool: {exc}", err=True)
        sys.exit(exc.exit_code)
    for kind, code in _error_types():
        if isinstance(exc, kind):
            if debug:
                import traceback

                traceback.print_exception(exc)
            if os.environ.get("RANK", "0") == "0":  # under torchrun, one report, not one per process
                typer.echo(f"segtool: error: {exc}", err=True)
            sys.exit(getattr(exc, "exit_code", code) if code == -1 else code)
    raise exc


def run(argv: Optional[list[str]] = None) -> None:
    """The console script: `main`, then a quick exit (see `segtool.cli.quick_exit`). Tests call
    `main`, which ends in SystemExit like any command line program."""
    from segtool.cli.quick_exit import leave

    try:
        main(argv)
    except SystemExit as exc:
        leave(exc.code)
    leave(0)


if __name__ == "__main__":
    run()
