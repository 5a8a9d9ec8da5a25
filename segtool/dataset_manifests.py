"""Dataset manifests: where a benchmark comes from, its terms, its files and layout, its split.

The YAML files live in `data_manifests/` (installed as the package `segtool.manifests`).
`verify` checks a local copy against a manifest; `fetch` downloads what has a public URL.

    manifest = load_manifest("flowers")
    fetch(manifest, "/data/flowers102")
    report = verify(manifest, "/data/flowers102")
    report.ok, report.problems
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

from .datasets import DatasetError

MANIFEST_PACKAGE = "segtool.manifests"
CHUNK_BYTES = 1 << 20
DOWNLOAD_TIMEOUT_S = 60
EXTRACTED_MARKER = ".segtool-extracted-{name}"


@dataclass(frozen=True)
class ManifestFile:
    """One file as published. `extract` marks an archive to unpack into the data root."""

    name: str
    url: str | None = None
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None      # some sources publish only an md5; better than nothing
    extract: bool = False


@dataclass(frozen=True)
class LayoutEntry:
    """A path that must exist in the data root; a trailing '/' means a folder.

    `count` is the number of files matching `pattern` (a glob relative to the folder).
    """

    path: str
    count: int | None = None
    pattern: str = "*"

    @property
    def is_dir(self) -> bool:
        return self.path.endswith("/")


@dataclass(frozen=True)
class SplitFile:
    """A split list: `shipped` inside segtool, or found in the data `root`."""

    name: str
    location: str = "shipped"
    sha256: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    homepage: str
    licence: str
    citation: str
    files: tuple[ManifestFile, ...]
    layout: tuple[LayoutEntry, ...]
    split_definition: str
    split_files: tuple[SplitFile, ...]
    protocol: str
    eval_dataset: str | None = None      # the name `segtool eval` takes, when it is a benchmark
    aliases: tuple[str, ...] = ()
    notes: str | None = None
    source: str = ""                     # the YAML it was read from

    @property
    def names(self) -> tuple[str, ...]:
        extra = (self.eval_dataset,) if self.eval_dataset else ()
        return tuple(dict.fromkeys((self.name, *self.aliases, *extra)))

    @property
    def downloadable(self) -> bool:
        return any(f.url for f in self.files)


# ----------------------------------------------------------------------------- loading

def _manifest_dir():
    from importlib.resources import files

    return files(MANIFEST_PACKAGE)


def list_manifests() -> list[str]:
    return sorted(entry.name[: -len(".yaml")] for entry in _manifest_dir().iterdir() if entry.name.endswith(".yaml"))


def _build(cls, data, where: str):
    if not isinstance(data, dict):
        raise DatasetError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DatasetError(f"{where}: unknown field(s) {', '.join(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise DatasetError(f"{where}: {exc}") from None


def parse_manifest(data: dict, source: str = "<manifest>") -> Manifest:
    """A Manifest from the YAML mapping; every wrong field is named with its file."""
    if not isinstance(data, dict):
        raise DatasetError(f"{source}: a manifest must be a YAML mapping")
    data = dict(data)
    split = data.pop("split", None) or {}
    if not isinstance(split, dict):
        raise DatasetError(f"{source}: split: expected a mapping with definition and files")
    unknown_split = sorted(set(split) - {"definition", "files"})
    if unknown_split:
        raise DatasetError(f"{source}: split: unknown field(s) {', '.join(unknown_split)}")
    required = ("name", "title", "homepage", "licence", "citation", "protocol")
    missing = [key for key in required if not data.get(key)]
    if missing:
        raise DatasetError(f"{source}: missing field(s) {', '.join(missing)}")
    files_ = tuple(_build(ManifestFile, item, f"{source}: files[{i}]") for i, item in enumerate(data.pop("files", None) or []))
    layout = tuple(_build(LayoutEntry, item, f"{source}: layout[{i}]") for i, item in enumerate(data.pop("layout", None) or []))
    split_files = tuple(_build(SplitFile, item, f"{source}: split.files[{i}]")
                        for i, item in enumerate(split.get("files") or []))
    for i, entry in enumerate(files_):
        if entry.size is not None and (not isinstance(entry.size, int) or isinstance(entry.size, bool)):
            raise DatasetError(f"{source}: files[{i}].size must be a number of bytes or null")
        if not isinstance(entry.extract, bool):
            raise DatasetError(f"{source}: files[{i}].extract must be true or false")
    for i, entry in enumerate(layout):
        if entry.count is not None and (not isinstance(entry.count, int) or isinstance(entry.count, bool)):
            raise DatasetError(f"{source}: layout[{i}].count must be a whole number or null")
    for i, split_file in enumerate(split_files):
        if split_file.location not in ("shipped", "root"):
            raise DatasetError(f"{source}: split.files[{i}].location must be shipped or root")
    data["aliases"] = tuple(data.get("aliases") or ())
    return _build(Manifest, dict(data, files=files_, layout=layout, split_files=split_files,
                                 split_definition=str(split.get("definition", "")).strip(), source=source), source)


def load_manifest(name: str) -> Manifest:
    """A shipped manifest by name or alias (flowers102 | flowers, cub200 | cub, ...) or a YAML path."""
    import yaml

    if name.endswith((".yaml", ".yml")):
        path = Path(name).expanduser()
        if not path.is_file():
            raise DatasetError(f"{path}: no such manifest file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise DatasetError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
        return parse_manifest(data, str(path))
    for entry_name in list_manifests():
        entry = _manifest_dir().joinpath(f"{entry_name}.yaml")
        manifest = parse_manifest(yaml.safe_load(entry.read_text()), f"{entry_name}.yaml")
        if name.lower() in manifest.names:
            return manifest
    raise DatasetError(f"unknown dataset {name!r}: known manifests are {', '.join(list_manifests())}")


# ----------------------------------------------------------------------------- checksums

def _progress_bar(enabled: bool):
    """A rich progress bar on stderr (stdout stays clean for results), or None."""
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn(), console=Console(stderr=True), transient=False)


class _Digests:
    """sha256 (and md5 when the record has only that) in one pass over the bytes."""

    def __init__(self, with_md5: bool = False) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False) if with_md5 else None
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.sha256.update(chunk)
        if self.md5 is not None:
            self.md5.update(chunk)
        self.size += len(chunk)


def _needs_md5(entry: ManifestFile) -> bool:
    return bool(entry.md5 and not entry.sha256)


def _digest_file(path: Path, progress=None, with_md5: bool = False) -> _Digests:
    digests = _Digests(with_md5)
    task = progress.add_task(f"checking {path.name}", total=path.stat().st_size) if progress else None
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digests.update(chunk)
            if progress:
                progress.advance(task, len(chunk))
    return digests


def _checksum_problem(entry: ManifestFile, digests: _Digests) -> str | None:
    if entry.size is not None and digests.size != entry.size:
        return f"size mismatch (expected {entry.size} bytes, found {digests.size})"
    if entry.sha256 and digests.sha256.hexdigest() != entry.sha256.lower():
        return f"checksum mismatch (sha256 expected {entry.sha256}, found {digests.sha256.hexdigest()})"
    if _needs_md5(entry) and digests.md5 is not None and digests.md5.hexdigest() != entry.md5.lower():
        return f"checksum mismatch (md5 expected {entry.md5}, found {digests.md5.hexdigest()})"
    return None


def _has_checksum(entry: ManifestFile) -> bool:
    return bool(entry.sha256 or entry.md5)


# ----------------------------------------------------------------------------- verify

@dataclass(frozen=True)
class Finding:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class VerifyReport:
    """`problems` fail verification; `notes` are for information (e.g. no checksum on record)."""

    manifest: str
    root: Path
    problems: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Finding(path, message))

    def note(self, path: str, message: str) -> None:
        self.notes.append(Finding(path, message))


def _verify_files(manifest: Manifest, root: Path, report: VerifyReport, progress) -> None:
    for entry in manifest.files:
        path = root / entry.name
        report.checked.append(entry.name)
        if not path.is_file():
            if entry.extract:
                report.note(entry.name, "archive not present (not needed once extracted)")
            else:
                report.problem(entry.name, "missing")
            continue
        if not _has_checksum(entry) and entry.size is None:
            report.note(entry.name, "no checksum on record")
            continue
        problem = _checksum_problem(entry, _digest_file(path, progress, _needs_md5(entry)))
        if problem:
            report.problem(entry.name, problem)
        elif not _has_checksum(entry):
            report.note(entry.name, "no checksum on record (size matches)")


def _verify_layout(manifest: Manifest, root: Path, report: VerifyReport) -> None:
    plain_files = {entry.name for entry in manifest.files if not entry.extract}
    for entry in manifest.layout:
        if entry.path in plain_files:
            continue  # checked, with its checksum, among the files
        path = root / entry.path.rstrip("/")
        report.checked.append(entry.path)
        if entry.is_dir and not path.is_dir():
            report.problem(entry.path, "missing folder" if not path.exists() else "not a folder")
            continue
        if not entry.is_dir and not path.is_file():
            report.problem(entry.path, "missing file" if not path.exists() else "not a file")
            continue
        if entry.is_dir and entry.count is not None:
            found = sum(1 for p in path.glob(entry.pattern) if p.is_file())
            if found != entry.count:
                report.problem(entry.path, f"wrong count (expected {entry.count} files matching {entry.pattern}, found {found})")


def _verify_split_files(manifest: Manifest, root: Path, report: VerifyReport) -> None:
    from .datasets import shipped_file

    downloaded = {entry.name for entry in manifest.files}
    for entry in manifest.split_files:
        if entry.location == "root" and entry.name in downloaded:
            continue  # already checked with the files
        label = f"{entry.name} (shipped)" if entry.location == "shipped" else entry.name
        try:
            path = shipped_file(entry.name) if entry.location == "shipped" else root / entry.name
        except DatasetError:
            report.problem(label, "missing from the installed package")
            continue
        report.checked.append(label)
        if not path.is_file():
            report.problem(label, "missing")
        elif not entry.sha256:
            report.note(label, "no checksum on record")
        else:
            found = _digest_file(path).sha256.hexdigest()
            if found != entry.sha256.lower():
                report.problem(label, f"checksum mismatch (sha256 expected {entry.sha256}, found {found})")


def _verify_reader(manifest: Manifest, root: Path, report: VerifyReport) -> None:
    """The evaluation reader's own view: every test image and mask it will open must exist."""
    from .datasets import open_dataset

    try:
        count = len(open_dataset(manifest.eval_dataset, root).samples())
    except DatasetError as exc:
        report.problem("test split", str(exc))
    else:
        report.checked.append(f"test split ({count} samples)")


def verify(manifest: Manifest, root: str | os.PathLike, progress: bool = False) -> VerifyReport:
    """Check a local copy: files and checksums, layout and counts, split lists, test samples."""
    root = Path(root).expanduser()
    report = VerifyReport(manifest.name, root)
    if not root.is_dir():
        report.problem(str(root), "data root is not a directory")
        return report
    bar = _progress_bar(progress)
    if bar:
        bar.start()
    try:
        _verify_files(manifest, root, report, bar)
    finally:
        if bar:
            bar.stop()
    _verify_layout(manifest, root, report)
    _verify_split_files(manifest, root, report)
    # The reader check repeats layout problems in other words; run it only on a sound layout.
    if manifest.eval_dataset and report.ok:
        _verify_reader(manifest, root, report)
    return report


# ----------------------------------------------------------------------------- fetch

def _download(entry: ManifestFile, root: Path, progress) -> Path:
    """Stream to `<name>.part`, check size and checksum, then rename: no half files under the real name."""
    import http.client
    import urllib.error
    import urllib.request

    from . import __version__

    target = root / entry.name
    partial = target.with_name(target.name + ".part")
    request = urllib.request.Request(entry.url, headers={"User-Agent": f"segtool/{__version__}"})
    digests = _Digests(_needs_md5(entry))
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response, open(partial, "wb") as out:
            total = response.length if response.length is not None else entry.size
            task = progress.add_task(f"downloading {entry.name}", total=total) if progress else None
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                digests.update(chunk)
                if progress:
                    progress.advance(task, len(chunk))
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        reason = str(exc.reason)
    except (OSError, http.client.HTTPException) as exc:
        reason = str(exc) or type(exc).__name__
    else:
        reason = None
    if reason is not None:
        partial.unlink(missing_ok=True)
        raise DatasetError(f"cannot download {entry.url}: {reason}; download it by hand into {root}")
    problem = _checksum_problem(entry, digests)
    if problem:
        partial.unlink(missing_ok=True)
        raise DatasetError(f"{entry.name} downloaded from {entry.url}: {problem}; the download is damaged or the "
                           "file changed upstream")
    os.replace(partial, target)
    return target


def _inside(target: Path, member: str) -> bool:
    if not member or os.path.isabs(member) or member.startswith(("/", "\\")):
        return False
    base = target.resolve()
    resolved = (base / member).resolve()
    return resolved == base or base in resolved.parents


def _extract_tar(archive: Path, target: Path) -> None:
    import tarfile

    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if not _inside(target, member.name):
                raise DatasetError(f"{archive}: unsafe archive member {member.name!r} (outside {target}); not extracted")
            if member.issym() and not _inside(target, os.path.join(os.path.dirname(member.name), member.linkname)):
                raise DatasetError(f"{archive}: unsafe link {member.name!r} -> {member.linkname!r}; not extracted")
            if member.islnk() and not _inside(target, member.linkname):
                raise DatasetError(f"{archive}: unsafe link {member.name!r} -> {member.linkname!r}; not extracted")
            if member.isdev():
                raise DatasetError(f"{archive}: device file {member.name!r} in archive; not extracted")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
        else:  # Python builds without extraction filters: the checks above are the guard
            tar.extractall(target)


def _extract_zip(archive: Path, target: Path) -> None:
    import zipfile

    with zipfile.ZipFile(archive) as bundle:
        for name in bundle.namelist():
            if not _inside(target, name.replace("\\", "/")):
                raise DatasetError(f"{archive}: unsafe archive member {name!r} (outside {target}); not extracted")
        bundle.extractall(target)


ARCHIVE_SUFFIXES: dict[str, Callable[[Path, Path], None]] = {
    ".tgz": _extract_tar, ".tar.gz": _extract_tar, ".tar": _extract_tar, ".tar.bz2": _extract_tar,
    ".tar.xz": _extract_tar, ".zip": _extract_zip,
}


def extract_archive(archive: Path, target: Path) -> None:
    """Unpack a .tgz/.tar/.zip into `target`, refusing members that would land outside it."""
    import tarfile
    import zipfile

    extractor = next((fn for suffix, fn in ARCHIVE_SUFFIXES.items() if archive.name.lower().endswith(suffix)), None)
    if extractor is None:
        raise DatasetError(f"{archive}: unknown archive type (expected {', '.join(ARCHIVE_SUFFIXES)})")
    try:
        extractor(archive, target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{archive}: damaged archive ({exc}); delete it and fetch again") from None


def _present_and_sound(entry: ManifestFile, path: Path, progress) -> bool:
    """An existing file is kept when its checksum (or, lacking one, its size) matches the record."""
    if not path.is_file():
        return False
    if not _has_checksum(entry) and entry.size is None:
        return True  # nothing to compare against; re-downloading would not make it more certain
    return _checksum_problem(entry, _digest_file(path, progress, _needs_md5(entry))) is None


def _layout_present(manifest: Manifest, root: Path) -> bool:
    return bool(manifest.layout) and all((root / entry.path.rstrip("/")).exists() for entry in manifest.layout)


def fetch(manifest: Manifest, root: str | os.PathLike, progress: bool = True) -> list[Path]:
    """Download every file with a URL into `root`, check it, unpack archives. Returns the files.

    Files already present with a matching checksum are not downloaded again; an archive is
    unpacked again only when it was just downloaded or its contents are missing.
    """
    root = Path(root).expanduser()
    wanted = [entry for entry in manifest.files if entry.url]
    if not wanted:
        raise DatasetError(f"{manifest.name}: no public download URL; download it by hand into {root} "
                           f"(see `segtool data info {manifest.name}`)")
    root.mkdir(parents=True, exist_ok=True)
    bar = _progress_bar(progress)
    if bar:
        bar.start()
    fetched = []
    try:
        for entry in wanted:
            path = root / entry.name
            downloaded = False
            if not _present_and_sound(entry, path, bar):
                path = _download(entry, root, bar)
                downloaded = True
            marker = root / EXTRACTED_MARKER.format(name=entry.name)
            if entry.extract and (downloaded or not marker.exists() or not _layout_present(manifest, root)):
                extract_archive(path, root)
                marker.write_text(f"{entry.name} extracted into {root}\n")
            fetched.append(path)
    finally:
        if bar:
            bar.stop()
    return fetched
