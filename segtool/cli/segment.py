"""The `segment` command: options -> segmenter -> files -> report on screen or as JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from segtool.cli.options import check_device, pipeline_options
from segtool.errors import UsageError

console = Console(stderr=True)


def run_segment(paths: list[str], *, k=None, method=None, refine=None, rule=None, model=None, out: Path = Path("segtool-out"),
                as_json: bool = False, device: str = "auto", max_pixels: int = 100_000_000, batch_size: int = 8,
                parts: int | None = None) -> int:
    options = pipeline_options(k, method, refine, rule)   # every option checked before any heavy import
    check_device(device)
    check_parts(parts)
    if str(out) == "-":
        raise UsageError("--out -: segment writes PNG files (mask, overlay, clusters); give a folder, or --json "
                         "for the results on standard output")
    if paths.count("-") > 1:
        raise UsageError("'-' (standard input) can be given once")
    stdin_folder, stdin_file = None, None
    if "-" in paths:
        stdin_folder, stdin_file = _stdin_to_file()
        paths = [stdin_file if p == "-" else p for p in paths]
    try:
        return _segment(paths, options, model, out, as_json, device, max_pixels, batch_size, stdin_file, parts)
    finally:
        if stdin_folder is not None:
            import shutil

            shutil.rmtree(stdin_folder, ignore_errors=True)


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


def _segment(paths, options, model, out, as_json, device, max_pixels, batch_size, stdin_file=None, parts=None) -> int:

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.registry import MethodSpec, build_segmenter
    from segtool.segment import segment_files

    segmenter = build_segmenter(MethodSpec("scvae"), cli=options,
                                extractor_factory=lambda: load_extractor(model, device=device, batch_size=batch_size))
    with Progress(TextColumn("[bold]segment"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("segment", total=None)
        report = segment_files(paths, segmenter, out, max_pixels=max_pixels, batch_size=batch_size,
                               progress=lambda done, total: bar.update(task, completed=done, total=total), parts=parts)
    if stdin_file is not None:  # the user typed '-', not the temporary file behind it
        for r in report.results:
            r["input"] = "-" if r.get("input") == stdin_file else r.get("input")
        report.failures[:] = [("-" if item == stdin_file else item, error.replace(stdin_file, "standard input"))
                              for item, error in report.failures]
    if as_json:
        payload = {"results": report.results,
                   "failed": [{"input": i, "error": e} for i, e in report.failures],
                   "settings": segmenter.settings()}
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for r in report.results:
            if parts:
                say(f"{escape(r['input'])}: {parts} parts -> {escape(r['outputs']['parts'])}")
                continue
            say(f"{escape(r['input'])}: foreground {100 * r['foreground_fraction']:.1f}% -> {escape(r['outputs']['mask'])}")
    for item, error in report.failures:
        message = error if error.startswith(item) else f"{item}: {error}"
        say(f"[red]failed[/red] {escape(message)}")
    if report.failures:
        say(f"{len(report.results)} segmented, {len(report.failures)} failed")
        return 1
    return 0


def say(text: str) -> None:
    """One message, one line on stderr: never wrapped at the terminal width (scripts grep these
    lines), and file names are escaped so brackets in them are not read as rich markup."""
    console.print(text, highlight=False, soft_wrap=True)
