"""The `segment` command: options -> segmenter -> files (or a watched folder, or standard output)
-> report on screen or as JSON."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from segtool.cli.options import check_cache_dir, check_device, check_precision, pipeline_options
from segtool.errors import Interrupted, UsageError

console = Console(stderr=True)


@dataclass
class Screen:
    """What the command prints on stderr: -q silences all but failures, -v adds a line per image."""
    quiet: bool = False
    verbose: bool = False


def output_kinds(only_mask: bool, cutout: bool, to_stdout: bool, parts: int | None = None) -> tuple[str, ...]:
    from segtool.segment_files import DEFAULT_KINDS, PARTS_KINDS

    if only_mask and cutout:
        raise UsageError("--only-mask and --cutout: choose one (--cutout writes <stem>_cutout.png beside the mask, "
                         "overlay and cluster map)")
    if parts and (only_mask or cutout):
        raise UsageError(f"--parts with {'--only-mask' if only_mask else '--cutout'}: --parts writes part maps, "
                         "not masks; drop one of them")
    if parts:
        return PARTS_KINDS[:1] if to_stdout else PARTS_KINDS
    if to_stdout:
        return ("cutout",) if cutout else ("mask",)
    if only_mask:
        return ("mask",)
    return DEFAULT_KINDS + (("cutout",) if cutout else ())


def run_segment(paths: list[str], *, k=None, method=None, refine=None, rule=None, model=None, out: Path = Path("segtool-out"),
                as_json: bool = False, device: str = "auto", precision: str = "auto", max_pixels: int = 100_000_000, batch_size: int = 8, workers: int | None = None,
                only_mask: bool = False, cutout: bool = False, quiet: bool = False, verbose: bool = False,
                watch: bool = False, cache: bool | None = None, cache_dir: Path | None = None,
                parts: int | None = None) -> int:
    options = pipeline_options(k, method, refine, rule)   # every option checked before any heavy import
    check_device(device)
    check_precision(precision)
    check_parts(parts)
    if quiet and verbose:
        raise UsageError("-q/--quiet and -v/--verbose: choose one")
    if cache is False and cache_dir is not None:
        raise UsageError("--cache-dir with --no-cache: the folder would not be used; drop one of them")
    use_cache = cache if cache is not None else cache_dir is not None   # segment caches only when asked
    if use_cache:
        check_cache_dir(cache_dir)
    if paths.count("-") > 1:
        raise UsageError("'-' (standard input) can be given once")
    to_stdout = str(out) == "-"
    kinds = output_kinds(only_mask, cutout, to_stdout, parts)
    if watch:
        _check_watch(paths, to_stdout, as_json)
    count = _count_inputs(paths)
    if to_stdout:
        _check_stdout(count, as_json)
    screen = Screen(quiet, verbose or watch)
    extractor = dict(model=model, device=device, precision=precision, batch_size=batch_size, cache=use_cache,
                     cache_dir=str(cache_dir) if cache_dir else None)
    if watch:
        return _watch(Path(paths[0]), options, extractor, out, kinds, max_pixels, screen, parts, workers)
    stdin_folder, stdin_file = None, None
    if "-" in paths:
        stdin_folder, stdin_file = _stdin_to_file()
        paths = [stdin_file if p == "-" else p for p in paths]
    try:
        return _segment(paths, options, extractor, out, kinds, as_json, max_pixels, screen, count, stdin_file, parts,
                        workers)
    finally:
        if stdin_folder is not None:
            import shutil

            shutil.rmtree(stdin_folder, ignore_errors=True)


def _count_inputs(paths: list[str]) -> int:
    """How many images the paths name ('-' is one): decides the progress bar and guards --out -."""
    from segtool.segment_files import collect_inputs

    files, _ = collect_inputs([p for p in paths if p != "-"])
    return len(files) + ("-" in paths)


def _check_stdout(count: int, as_json: bool) -> None:
    if as_json:
        raise UsageError("--out - puts the PNG on standard output; --json cannot share it (give an output folder)")
    if count > 1:
        raise UsageError(f"--out - writes one image's PNG to standard output, but the inputs name {count} images; "
                         "give one image, or an output folder")
    if sys.stdout is not None and sys.stdout.isatty():
        raise UsageError("--out -: standard output is a terminal; redirect it to a file (> mask.png) or a pipe")


def _check_watch(paths: list[str], to_stdout: bool, as_json: bool) -> None:
    if len(paths) != 1 or not Path(paths[0]).expanduser().is_dir():
        raise UsageError(f"--watch takes one folder to watch, got {' '.join(paths)}")
    if to_stdout:
        raise UsageError("--watch writes files as images arrive; --out - (standard output) takes one image")
    if as_json:
        raise UsageError("--watch reports each image as it is done; --json is for a run over given files")


def _stdin_to_file() -> tuple[str, str]:
    """`-` as an input: the bytes on standard input, kept in a temporary file named `stdin` (the
    outputs are stdin_mask.png, ...). The image type is read from the content, not a suffix."""
    import tempfile

    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("'-' reads an image from standard input, but nothing is piped in (e.g. cat photo.jpg | "
                         "segtool segment -)")
    data = sys.stdin.buffer.read()
    if not data:
        raise UsageError("'-': standard input is empty")
    folder = tempfile.mkdtemp(prefix="segtool-stdin-")
    path = Path(folder) / "stdin"
    path.write_bytes(data)
    return folder, str(path)


def check_parts(parts: int | None) -> None:
    from segtool.io.outputs import PALETTE

    if parts is not None and not 2 <= parts <= len(PALETTE):
        raise UsageError(f"--parts {parts}: give 2 to {len(PALETTE)} parts (the colours of the map stay distinct)")


def _build_segmenter(options: dict, extractor: dict, workers: int | None):
    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.registry import MethodSpec, build_segmenter

    return build_segmenter(MethodSpec("scvae"), cli=options, extractor_factory=lambda: load_extractor(**extractor),
                           workers=workers)


def _image_line(row: dict, shown_input: str | None = None) -> str:
    name = shown_input or row["input"]
    where = next(iter(row["outputs"].values()), "")
    if "part_sizes" in row:  # --parts: no foreground
        return f"{escape(name)}: {len(row['part_sizes'])} parts -> {escape(where)}"
    return (f"{escape(name)}: foreground {100 * row['foreground_fraction']:.1f}%, {row['seconds']:.2f} s"
            f" -> {escape(where)}")


def _segment(paths, options, extractor, out, kinds, as_json, max_pixels, screen: Screen, count: int,
             stdin_file=None, parts=None, workers=None) -> int:

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from segtool.segment_files import segment_files

    segmenter = _build_segmenter(options, extractor, workers)
    target = out
    if str(out) == "-":
        from segtool.io.outputs import StreamOutput

        target = StreamOutput(sys.stdout.buffer)

    def shown(item: str) -> str:  # the user typed '-', not the temporary file behind it
        return "-" if item == stdin_file else item

    def each(row: dict) -> None:
        if screen.verbose:
            say(_image_line(row, shown(row["input"])))

    bar_off = screen.quiet or count < 2 or not console.is_terminal
    with Progress(TextColumn("[bold]segment"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=bar_off) as bar:
        task = bar.add_task("segment", total=None)
        report = segment_files(paths, segmenter, target, max_pixels=max_pixels, batch_size=extractor["batch_size"],
                               kinds=kinds, on_image=each, parts=parts,
                               progress=lambda done, total: bar.update(task, completed=done, total=total))
    for r in report.results:
        r["input"] = shown(r["input"])
    report.failures[:] = [(shown(item), error.replace(stdin_file, "standard input") if stdin_file else error)
                          for item, error in report.failures]
    if as_json:
        payload = {"results": report.results,
                   "failed": [{"input": i, "error": e} for i, e in report.failures],
                   "settings": segmenter.settings()}
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    for item, error in report.failures:
        say(_failure_line(item, error))
    if report.failures:
        say(f"{len(report.results)} segmented, {len(report.failures)} failed")
        return 1
    if not screen.quiet:
        say(f"{len(report.results)} segmented -> {escape(str(out) if str(out) != '-' else 'standard output')}")
    return 0


def _failure_line(item: str, error: str) -> str:
    message = error if error.startswith(item) else f"{item}: {error}"
    return f"[red]failed[/red] {escape(message)}"


def _watch(folder: Path, options, extractor, out, kinds, max_pixels, screen: Screen, parts=None, workers=None) -> int:
    from segtool.io.outputs import OutputDir
    from segtool.segment_files import watch_folder

    target = OutputDir(out, [folder])
    segmenter = _build_segmenter(options, extractor, workers)
    counts = {"segmented": 0, "failed": 0}

    def each(row: dict) -> None:
        counts["segmented"] += 1
        if not screen.quiet:
            say(_image_line(row))

    def failed(item: str, error: str) -> None:
        counts["failed"] += 1
        say(_failure_line(item, error))

    _stop_on_interrupt_or_term()
    try:
        if not screen.quiet:
            say(f"watching {escape(str(folder))} for images (Ctrl-C to stop); outputs in {escape(str(out))}")
        watch_folder(folder, segmenter, target, kinds=kinds, max_pixels=max_pixels,
                     batch_size=extractor["batch_size"], on_image=each, on_failure=failed, parts=parts)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped watching {folder}: {counts['segmented']} segmented, "
                          f"{counts['failed']} failed") from None
    return 0


def _stop_on_interrupt_or_term() -> None:
    """A watch runs until stopped: Ctrl-C, or SIGTERM from a service manager or `kill`. Python
    leaves SIGINT ignored when the process started with it ignored (a job launched in the
    background by a script), and then Ctrl-C could never stop the watch: both signals are bound
    here explicitly."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)


def say(text: str) -> None:
    """One message, one line on stderr: never wrapped at the terminal width (scripts grep these
    lines), and file names are escaped so brackets in them are not read as rich markup."""
    console.print(text, highlight=False, soft_wrap=True)
