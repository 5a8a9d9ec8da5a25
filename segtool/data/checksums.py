"""Checksums of downloaded and local files: sha256 (and md5 where that is all a source publishes).

`progress`, where taken, is anything with rich's `add_task(description, total=...)` and
`advance(task, n)`; the command line passes a rich Progress, the library draws nothing itself.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from segtool.data.manifests import ManifestFile

CHUNK_BYTES = 1 << 20


class Digests:
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


def needs_md5(entry: ManifestFile) -> bool:
    return bool(entry.md5 and not entry.sha256)


def digest_file(path: Path, progress=None, with_md5: bool = False) -> Digests:
    digests = Digests(with_md5)
    task = progress.add_task(f"checking {path.name}", total=path.stat().st_size) if progress else None
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digests.update(chunk)
            if progress:
                progress.advance(task, len(chunk))
    return digests


def checksum_problem(entry: ManifestFile, digests: Digests) -> str | None:
    if entry.size is not None and digests.size != entry.size:
        return f"size mismatch (expected {entry.size} bytes, found {digests.size})"
    if entry.sha256 and digests.sha256.hexdigest() != entry.sha256.lower():
        return f"checksum mismatch (sha256 expected {entry.sha256}, found {digests.sha256.hexdigest()})"
    if needs_md5(entry) and digests.md5 is not None and digests.md5.hexdigest() != entry.md5.lower():
        return f"checksum mismatch (md5 expected {entry.md5}, found {digests.md5.hexdigest()})"
    return None


def has_checksum(entry: ManifestFile) -> bool:
    return bool(entry.sha256 or entry.md5)
