"""`segtool data ...`: list, describe, verify and fetch the benchmark datasets.

Only typer is imported at module level: `segtool --help` must not pay for yaml or rich.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from segtool.locations import DATA_ROOT_TEXT

data_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                       help="Benchmark datasets: list, describe, verify, fetch.")


def _human_size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _checksum_label(entry) -> str:
    if entry.sha256:
        return f"sha256 {entry.sha256}"
    if entry.md5:
        return f"md5 {entry.md5}"
    return "none on record"


def _print_report(report) -> None:
    for finding in report.notes:
        typer.echo(f"note: {finding}")
    for finding in report.problems:
        typer.echo(f"problem: {finding}")
    if report.ok:
        typer.echo(f"ok: {report.root} matches {report.manifest} ({len(report.checked)} checks)")
    else:
        typer.echo(f"{len(report.problems)} problem(s) in {report.root} for {report.manifest}")


@data_app.command("list")
def list_command() -> None:
    """The datasets segtool knows, with their `segtool eval` names."""
    from rich.console import Console
    from rich.table import Table

    from segtool.data.manifests import list_manifests, load_manifest

    table = Table(box=None, pad_edge=False)
    for column in ("name", "eval name", "title", "download"):
        table.add_column(column)
    for name in list_manifests():
        manifest = load_manifest(name)
        table.add_row(manifest.name, manifest.eval_dataset or "-", manifest.title,
                      "segtool data fetch" if manifest.downloadable else "manual")
    Console().print(table)


@data_app.command()
def info(name: str = typer.Argument(..., help="A dataset name (flowers102, cub200, isic2016, imagenet, ffhq) or alias.")) -> None:
    """Source, licence, files, layout, split and protocol of one dataset."""
    from rich.console import Console
    from rich.table import Table

    from segtool.data.manifests import load_manifest

    manifest = load_manifest(name)
    console = Console()
    console.print(f"[bold]{manifest.title}[/bold]  ({', '.join(manifest.names)})")
    console.print(f"homepage: {manifest.homepage}")
    if manifest.eval_dataset:
        console.print(f"evaluate: segtool eval {manifest.eval_dataset} (or {manifest.name}): the copy `segtool data fetch "
                      f"{manifest.name}` puts in {_root_or_default(None, manifest)}, or --data-root DIR", highlight=False,
                      markup=False, soft_wrap=True)
    console.print(f"licence:  {manifest.licence.strip()}")

    console.print("[bold]files[/bold]:")
    for entry in manifest.files:
        unpack = ", unpacked into the data root" if entry.extract else ""
        console.print(f"  {entry.name}  ({_human_size(entry.size)}, {_checksum_label(entry)}{unpack})", highlight=False)
        console.print(f"    {entry.url or 'manual download (see notes)'}", highlight=False, soft_wrap=True)

    layout = Table(title="layout after unpacking", title_justify="left", box=None, pad_edge=False)
    for column in ("path", "files"):
        layout.add_column(column)
    for entry in manifest.layout:
        count = f"{entry.count:,} x {entry.pattern}" if entry.count is not None else ""
        layout.add_row(entry.path, count)
    console.print(layout)

    console.print(f"[bold]split[/bold]: {manifest.split_definition}")
    for split_file in manifest.split_files:
        digest = f"sha256 {split_file.sha256}" if split_file.sha256 else "no checksum on record"
        console.print(f"  {split_file.name} ({split_file.location}): {digest}")
    console.print(f"[bold]protocol[/bold]: {manifest.protocol.strip()}")
    if manifest.notes:
        console.print(f"[bold]notes[/bold]: {manifest.notes.strip()}")
    console.print("[bold]citation[/bold]:")
    console.print(manifest.citation.rstrip(), markup=False, highlight=False)


@contextmanager
def _bytes_progress(enabled: bool):
    """A rich bar of bytes on stderr (stdout stays clean for results), or None; closed on any exit."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=Console(stderr=True), transient=False) as bar:
        yield bar


def _verify_and_report(manifest, data_root: Path, progress: bool) -> None:
    """Verify a local copy, print each finding, and exit 1 when any is a problem."""
    from segtool.data.verify import verify as verify_copy

    with _bytes_progress(progress) as bar:
        report = verify_copy(manifest, data_root, progress=bar)
    _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


# Where `fetch` puts a dataset when no root is given, and where `verify` and `segtool eval` look for it.
DEFAULT_ROOT_TEXT = f"({DATA_ROOT_TEXT})/<name>, e.g. ~/.cache/segtool/data/cub200"


def _root_or_default(data_root: Optional[Path], manifest) -> Path:
    from segtool.locations import default_dataset_root

    return data_root if data_root is not None else default_dataset_root(manifest.name)


@data_app.command()
def verify(
    name: str = typer.Argument(..., help="A dataset name or alias."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", show_default=DEFAULT_ROOT_TEXT,
                                             help="The folder holding the dataset."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a bar while checksumming large files."),
) -> None:
    """Check a local copy: files, checksums, layout, counts, split lists. Exit 1 on any problem."""
    from segtool.data.manifests import load_manifest

    manifest = load_manifest(name)
    _verify_and_report(manifest, _root_or_default(data_root, manifest), progress)


@data_app.command()
def fetch(
    name: str = typer.Argument(..., help="A dataset name or alias."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", show_default=DEFAULT_ROOT_TEXT,
                                             help="Where to download and unpack the files."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show download progress bars."),
) -> None:
    """Download the public files of a dataset, check their checksums, unpack, then verify."""
    from segtool.data.fetch import fetch as fetch_files
    from segtool.data.manifests import load_manifest

    manifest = load_manifest(name)
    data_root = _root_or_default(data_root, manifest)
    with _bytes_progress(progress) as bar:
        paths = fetch_files(manifest, data_root, progress=bar)
    for path in paths:
        typer.echo(f"fetched: {path}")
    _verify_and_report(manifest, data_root, progress)
