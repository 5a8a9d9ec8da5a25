"""`fetch`: download a dataset's files into a data root, check them, unpack archives.

Nothing is written outside the root: manifest paths are relative (segtool.data.manifests),
downloads stream to `<name>.part` and are renamed only once their checksum matches, archives
are unpacked all or nothing. `progress`: see segtool.data.checksums.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from segtool.data.checksums import CHUNK_BYTES, Digests, checksum_problem, digest_file, has_checksum, needs_md5
from segtool.data.manifests import Manifest, ManifestFile, relative_path_problem, require_relative_paths
from segtool.data.readers import DatasetError

DOWNLOAD_TIMEOUT_S = 60
EXTRACTED_MARKER = ".segtool-extracted-{name}"


def _download(entry: ManifestFile, root: Path, progress) -> Path:
    """Stream to `<name>.part`, check size and checksum, then rename: no half files under the real name."""
    import http.client
    import urllib.error
    import urllib.request

    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("segtool")
    except PackageNotFoundError:  # a source checkout that was never installed
        __version__ = "dev"

    target = root / entry.name
    partial = target.with_name(target.name + ".part")
    request = urllib.request.Request(entry.url, headers={"User-Agent": f"segtool/{__version__}"})
    digests = Digests(needs_md5(entry))
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
    problem = checksum_problem(entry, digests)
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
    if not has_checksum(entry) and entry.size is None:
        return True  # nothing to compare against; re-downloading would not make it more certain
    return checksum_problem(entry, digest_file(path, progress, needs_md5(entry))) is None


def _layout_present(manifest: Manifest, root: Path) -> bool:
    return bool(manifest.layout) and all((root / entry.path.rstrip("/")).exists() for entry in manifest.layout)


def _resolves_inside(root: Path, path: Path) -> bool:
    base = root.resolve()
    resolved = path.resolve()
    return resolved == base or base in resolved.parents


def fetch(manifest: Manifest, root: str | os.PathLike, progress=None) -> list[Path]:
    """Download every file with a URL into `root`, check it, unpack archives. Returns the files.

    Files already present with a matching checksum are not downloaded again; an archive is
    unpacked again only when it was just downloaded or its contents are missing.
    """
    require_relative_paths(manifest)
    root = Path(root).expanduser()
    wanted = [entry for entry in manifest.files if entry.url]
    if not wanted:
        raise DatasetError(f"{manifest.name}: no public download URL; download it by hand into {root} "
                           f"(see `segtool data info {manifest.name}`)")
    root.mkdir(parents=True, exist_ok=True)
    fetched = []
    for entry in wanted:
        path = root / entry.name
        if not _resolves_inside(root, path):
            raise DatasetError(f"{root / entry.name}: resolves outside the data root {root} (through a "
                               "symbolic link); not written")
        downloaded = False
        if not _present_and_sound(entry, path, progress):
            path = _download(entry, root, progress)
            downloaded = True
        marker = root / EXTRACTED_MARKER.format(name=entry.name)
        if entry.extract and (downloaded or not marker.exists() or not _layout_present(manifest, root)):
            extract_archive(path, root)
            marker.write_text(f"{entry.name} extracted into {root}\n")
        fetched.append(path)
    return fetched
