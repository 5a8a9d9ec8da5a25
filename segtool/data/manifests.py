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
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable

from segtool.data.readers import DatasetError

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


_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DIGEST_LENGTHS = {"sha256": 64, "md5": 32}


def relative_path_problem(text) -> str | None:
    """Why `text` is not a safe path inside a data root, or None.

    The same rule archives get: no absolute paths (POSIX, UNC or drive letters), no `..`
    component, no NUL. A manifest is data from anywhere; it must never name a place outside
    the root it is applied to.
    """
    if not isinstance(text, str) or not text.strip():
        return "must be a non-empty relative path"
    if "\0" in text:
        return "must not contain a NUL character"
    if text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text) or text.startswith("~"):
        return f"must be relative to the data root, got the absolute path {text!r}"
    if ".." in re.split(r"[\\/]", text):
        return f"must stay inside the data root ('..' is not allowed), got {text!r}"
    return None


def _check_path(value, where: str) -> None:
    problem = relative_path_problem(value)
    if problem:
        raise DatasetError(f"{where} {problem}")


def _check_digest(value, where: str, kind: str) -> None:
    if value is None:
        return
    length = _DIGEST_LENGTHS[kind]
    if not isinstance(value, str):
        raise DatasetError(f"{where} must be a quoted string of {length} hex digits (YAML read an unquoted "
                           f"{type(value).__name__}: write {kind}: \"...\")")
    if len(value) != length or not _HEX.match(value):
        raise DatasetError(f"{where} must be {length} hex digits, got {value!r}")


def _check_whole(value, where: str, what: str) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise DatasetError(f"{where} must be {what} (a whole number >= 0) or null, got {value!r}")


def _check_text(value, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise DatasetError(f"{where} must be text, got {value!r}")


def _items(data: dict, key: str, where: str) -> list:
    value = data.pop(key, None)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DatasetError(f"{where}: {key} must be a list, got {type(value).__name__}")
    return value


def parse_manifest(data: dict, source: str = "<manifest>") -> Manifest:
    """A Manifest from the YAML mapping; every wrong field is named with its file.

    Every value is checked here, before anything is read or written: paths must stay inside
    the data root, checksums are hex strings of the right length, counts are whole numbers.
    """
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
    for key in (*required, "eval_dataset", "notes"):
        _check_text(data.get(key), f"{source}: {key}")
    files_ = tuple(_build(ManifestFile, item, f"{source}: files[{i}]") for i, item in enumerate(_items(data, "files", source)))
    layout = tuple(_build(LayoutEntry, item, f"{source}: layout[{i}]") for i, item in enumerate(_items(data, "layout", source)))
    split_files = tuple(_build(SplitFile, item, f"{source}: split.files[{i}]")
                        for i, item in enumerate(_items(dict(split), "files", f"{source}: split")))
    for i, entry in enumerate(files_):
        where = f"{source}: files[{i}]"
        _check_path(entry.name, f"{where}.name")
        _check_text(entry.url, f"{where}.url")
        _check_whole(entry.size, f"{where}.size", "a number of bytes")
        _check_digest(entry.sha256, f"{where}.sha256", "sha256")
        _check_digest(entry.md5, f"{where}.md5", "md5")
        if not isinstance(entry.extract, bool):
            raise DatasetError(f"{where}.extract must be true or false")
    for i, entry in enumerate(layout):
        where = f"{source}: layout[{i}]"
        _check_path(entry.path, f"{where}.path")
        _check_path(entry.pattern, f"{where}.pattern")
        _check_whole(entry.count, f"{where}.count", "a file count")
    for i, split_file in enumerate(split_files):
        where = f"{source}: split.files[{i}]"
        _check_path(split_file.name, f"{where}.name")
        _check_digest(split_file.sha256, f"{where}.sha256", "sha256")
        _check_text(split_file.description, f"{where}.description")
        if split_file.location not in ("shipped", "root"):
            raise DatasetError(f"{where}.location must be shipped or root")
    aliases = data.get("aliases") or ()
    if not isinstance(aliases, (list, tuple)) or not all(isinstance(a, str) and a for a in aliases):
        raise DatasetError(f"{source}: aliases must be a list of names, got {aliases!r}")
    data["aliases"] = tuple(aliases)
    return _build(Manifest, dict(data, files=files_, layout=layout, split_files=split_files,
                                 split_definition=str(split.get("definition", "")).strip(), source=source), source)


def load_manifest(name: str) -> Manifest:
    """A shipped manifest by name or alias (flowers102 | flowers, cub200 | cub, ...) or a YAML path."""
    import yaml

    from segtool.yamltext import load_yaml

    if name.endswith((".yaml", ".yml")):
        path = Path(name).expanduser()
        if not path.is_file():
            raise DatasetError(f"{path}: no such manifest file")
        try:
            data = load_yaml(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise DatasetError(f"{path}: not a text file (a manifest is UTF-8 YAML)") from None
        except yaml.YAMLError as exc:
            raise DatasetError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
        return parse_manifest(data, str(path))
    for entry_name in list_manifests():
        entry = _manifest_dir().joinpath(f"{entry_name}.yaml")
        manifest = parse_manifest(load_yaml(entry.read_text(encoding="utf-8")), f"{entry_name}.yaml")
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
    from segtool.data.readers import shipped_file

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
    from segtool.data.readers import open_dataset

    try:
        count = len(open_dataset(manifest.eval_dataset, root).samples())
    except DatasetError as exc:
        report.problem("test split", str(exc))
    else:
        report.checked.append(f"test split ({count} samples)")


def _require_relative_paths(manifest: Manifest) -> None:
    """Manifests built in code skip `parse_manifest`; the path rule holds for them too."""
    named = [(f"files {entry.name!r}", entry.name) for entry in manifest.files]
    named += [(f"layout {entry.path!r}", entry.path) for entry in manifest.layout]
    named += [(f"layout pattern {entry.pattern!r}", entry.pattern) for entry in manifest.layout]
    named += [(f"split file {entry.name!r}", entry.name) for entry in manifest.split_files]
    for where, value in named:
        _check_path(value, f"{manifest.source or manifest.name}: {where}")


def verify(manifest: Manifest, root: str | os.PathLike, progress: bool = False) -> VerifyReport:
    """Check a local copy: files and checksums, layout and counts, split lists, test samples."""
    _require_relative_paths(manifest)
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

    from segtool import __version__

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


class UnsafeArchiveError(DatasetError):
    """An archive member that would land outside the target, or a link or device file."""


def _member_problem(name: str) -> str | None:
    problem = relative_path_problem(name.replace("\\", "/").rstrip("/") or name)
    return problem


def _normalised(parent: str, link: str) -> str:
    return os.path.normpath(os.path.join(parent, link)).replace("\\", "/")


def _check_tar_members(archive: Path, members) -> None:
    """Refuse the whole archive on the first unsafe member, before anything is written.

    Links are checked lexically, and no member may pass through a symbolic link declared in
    the same archive: a chain such as `s -> .` then `s/s/esc -> ../..` resolves outside the
    target only once the links exist on disk, so it cannot be judged by path text alone.
    """
    links: set[str] = set()
    for member in members:
        name = member.name.rstrip("/")
        where = f"{archive}: unsafe archive, member {member.name!r}"
        problem = _member_problem(member.name)
        if problem:
            raise UnsafeArchiveError(f"{where} {problem}; nothing extracted")
        parts = name.split("/")
        if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
            raise UnsafeArchiveError(f"{where} lies under a symbolic link of the same archive; nothing extracted")
        if member.isdev() or member.isfifo():
            raise UnsafeArchiveError(f"{where} is a device or pipe; nothing extracted")
        if member.issym() or member.islnk():
            target = member.linkname if member.islnk() else _normalised(os.path.dirname(name), member.linkname)
            if os.path.isabs(member.linkname) or _member_problem(target) or target in (".", ""):
                raise UnsafeArchiveError(f"{where} links to {member.linkname!r}, outside the archive's folder; "
                                         "nothing extracted")
            if member.issym():
                links.add(name)


def _extract_tar(archive: Path, target: Path) -> None:
    import tarfile

    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        _check_tar_members(archive, members)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, members=members, filter="data")
        else:  # Python builds without extraction filters: the checks above are the guard
            tar.extractall(target, members=members)


_ZIP_SYMLINK = 0o120000


def _extract_zip(archive: Path, target: Path) -> None:
    import zipfile

    with zipfile.ZipFile(archive) as bundle:
        infos = bundle.infolist()
        for info in infos:
            where = f"{archive}: unsafe archive, member {info.filename!r}"
            problem = _member_problem(info.filename)
            if problem:
                raise UnsafeArchiveError(f"{where} {problem}; nothing extracted")
            if (info.external_attr >> 16) & 0o170000 == _ZIP_SYMLINK:
                raise UnsafeArchiveError(f"{where} is a symbolic link (not accepted in zip archives); nothing extracted")
        bundle.extractall(target, members=infos)


ARCHIVE_SUFFIXES: dict[str, Callable[[Path, Path], None]] = {
    ".tgz": _extract_tar, ".tar.gz": _extract_tar, ".tar": _extract_tar, ".tar.bz2": _extract_tar,
    ".tar.xz": _extract_tar, ".zip": _extract_zip,
}


def _merge_into(source: Path, target: Path) -> None:
    """Move the tree `source` into `target`, replacing files of the same name (a fresh unpack wins)."""
    for entry in source.iterdir():
        dest = target / entry.name
        if entry.is_dir() and not entry.is_symlink() and dest.is_dir() and not dest.is_symlink():
            _merge_into(entry, dest)
        else:
            if dest.is_dir() and not dest.is_symlink():
                import shutil

                shutil.rmtree(dest)
            os.replace(entry, dest)


def extract_archive(archive: Path, target: Path) -> None:
    """Unpack a .tgz/.tar/.zip into `target`: all of it, or nothing.

    Every member is checked before anything is written; the archive is unpacked into a
    temporary folder inside `target` and moved in only once the whole of it unpacked.
    """
    import shutil
    import tarfile
    import tempfile
    import zipfile

    extractor = next((fn for suffix, fn in ARCHIVE_SUFFIXES.items() if archive.name.lower().endswith(suffix)), None)
    if extractor is None:
        raise DatasetError(f"{archive}: unknown archive type (expected {', '.join(ARCHIVE_SUFFIXES)})")
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".segtool-unpack-", dir=target))
    try:
        try:
            extractor(archive, staging)
        except getattr(tarfile, "FilterError", ()) as exc:
            raise UnsafeArchiveError(f"{archive}: unsafe archive ({exc}); nothing extracted") from None
        except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            raise DatasetError(f"{archive}: damaged archive ({exc}); delete it and fetch again") from None
        except OSError as exc:
            raise DatasetError(f"{archive}: cannot unpack ({exc.strerror or exc}); nothing extracted") from None
        _merge_into(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _present_and_sound(entry: ManifestFile, path: Path, progress) -> bool:
    """An existing file is kept when its checksum (or, lacking one, its size) matches the record."""
    if not path.is_file():
        return False
    if not _has_checksum(entry) and entry.size is None:
        return True  # nothing to compare against; re-downloading would not make it more certain
    return _checksum_problem(entry, _digest_file(path, progress, _needs_md5(entry))) is None


def _layout_present(manifest: Manifest, root: Path) -> bool:
    return bool(manifest.layout) and all((root / entry.path.rstrip("/")).exists() for entry in manifest.layout)


def _resolves_inside(root: Path, path: Path) -> bool:
    base = root.resolve()
    resolved = path.resolve()
    return resolved == base or base in resolved.parents


def fetch(manifest: Manifest, root: str | os.PathLike, progress: bool = True) -> list[Path]:
    """Download every file with a URL into `root`, check it, unpack archives. Returns the files.

    Files already present with a matching checksum are not downloaded again; an archive is
    unpacked again only when it was just downloaded or its contents are missing.
    """
    _require_relative_paths(manifest)
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
            if not _resolves_inside(root, path):
                raise DatasetError(f"{root / entry.name}: resolves outside the data root {root} (through a "
                                   "symbolic link); not written")
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
