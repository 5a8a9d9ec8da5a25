"""`verify`: check a local copy of a dataset against its manifest.

Files and checksums, layout and counts, split lists, and the evaluation reader's own view of
the test samples. `progress`: see segtool.data.checksums.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from segtool.data.checksums import checksum_problem, digest_file, has_checksum, needs_md5
from segtool.data.manifests import Manifest, require_relative_paths
from segtool.data.readers import DatasetError


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
        if not has_checksum(entry) and entry.size is None:
            report.note(entry.name, "no checksum on record")
            continue
        problem = checksum_problem(entry, digest_file(path, progress, needs_md5(entry)))
        if problem:
            report.problem(entry.name, problem)
        elif not has_checksum(entry):
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
            found = digest_file(path).sha256.hexdigest()
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


def verify(manifest: Manifest, root: str | os.PathLike, progress=None) -> VerifyReport:
    """Check a local copy: files and checksums, layout and counts, split lists, test samples."""
    require_relative_paths(manifest)
    root = Path(root).expanduser()
    report = VerifyReport(manifest.name, root)
    if not root.is_dir():
        report.problem(str(root), "data root is not a directory")
        return report
    _verify_files(manifest, root, report, progress)
    _verify_layout(manifest, root, report)
    _verify_split_files(manifest, root, report)
    # The reader check repeats layout problems in other words; run it only on a sound layout.
    if manifest.eval_dataset and report.ok:
        _verify_reader(manifest, root, report)
    return report
