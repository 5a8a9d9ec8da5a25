"""`segtool segment`: files, folders and globs -> mask, overlay and cluster-map PNGs (or, with
`parts`, part maps: n regions and no foreground choice).

Good inputs are processed even when others fail; the failures are reported at the end and
make the exit status 1.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from segtool.errors import InputError
from segtool.io.images import DEFAULT_MAX_PIXELS, load_image, looks_like_image
from segtool.pipeline.parts import parts_labels
from segtool.pipeline.registry import k_beyond_grid
from segtool.io.outputs import OutputDir, cluster_image, overlay_image, parts_image, parts_overlay_image

GLOB_CHARS = set("*?[")
PARTS_KINDS = ("parts", "parts_overlay")


@dataclass
class SegmentReport:
    results: list[dict] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, reason)


def collect_inputs(specs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files, folders (their images, not recursive) and globs; problems are (spec, reason)."""
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        try:
            key = path.resolve()
        except (RuntimeError, OSError):  # a symbolic-link loop (RuntimeError before Python 3.13)
            problems.append((str(path), "symbolic link loop; point the link at a real file"))
            return
        if key not in seen:
            seen.add(key)
            files.append(path)

    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            # Broken links with image names are kept so that they are reported, not skipped silently.
            images = sorted(p for p in path.iterdir() if (p.is_file() or p.is_symlink()) and looks_like_image(p))
            if not images:
                problems.append((spec, "folder holds no image files"))
            for p in images:
                add(p)
        elif path.exists() or path.is_symlink():
            add(path)  # load_image explains what is wrong with it, if anything
        elif GLOB_CHARS & set(spec):
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            matches = [m for m in matches if m.is_file() and looks_like_image(m)]
            if not matches:
                problems.append((spec, "no image files match this pattern"))
            for m in matches:
                add(m)
        else:
            problems.append((spec, "no such file or folder"))
    return files, problems


def output_stems(files: list[Path]) -> dict[Path, str]:
    """A distinct output stem per input: the file stem, prefixed by its folder name on a clash."""
    counts: dict[str, int] = {}
    for f in files:
        counts[f.stem] = counts.get(f.stem, 0) + 1
    stems: dict[Path, str] = {}
    used: set[str] = set()
    for f in files:
        stem = f.stem if counts[f.stem] == 1 else f"{f.parent.name or 'root'}_{f.stem}"
        candidate, n = stem, 2
        while candidate in used:
            candidate, n = f"{stem}-{n}", n + 1
        used.add(candidate)
        stems[f] = candidate
    return stems


def segment_files(specs: list[str], segmenter, out_dir: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS,
                  batch_size: int = 8, progress: Callable[[int, int], None] | None = None,
                  parts: int | None = None) -> SegmentReport:
    """Masks, overlays and cluster maps of every input; with `parts`, part maps instead (one
    K-means into that many regions, no foreground choice: see `write_parts`)."""
    files, problems = collect_inputs(specs)
    report = SegmentReport(failures=list(problems))
    if not files:
        return report
    # Folders named on the command line and every expanded file (globs included): --out may be none
    # of them, nor the folder an input image sits in.
    folders = [Path(s).expanduser() for s in specs if Path(s).expanduser().is_dir()]
    out = OutputDir(out_dir, folders + files)
    protected = {f.resolve() for f in files}
    stems = output_stems(files)
    done = 0
    if progress:
        progress(done, len(files))
    for start in range(0, len(files), batch_size):
        chunk = files[start:start + batch_size]
        images: list[tuple[Path, np.ndarray]] = []
        for f in chunk:
            try:
                kinds = PARTS_KINDS if parts else ("mask", "overlay", "clusters")
                out.check_free([f"{stems[f]}_{kind}.png" for kind in kinds], protected)
                image = load_image(f, max_pixels=max_pixels)
                problem = parts_beyond_grid(segmenter, parts, *image.shape[:2]) if parts else \
                    k_beyond_grid(segmenter, *image.shape[:2])
                if problem:
                    raise InputError(f"{f}: --k is too large for this image: {problem}; choose a smaller --k")
                images.append((f, image))
            except InputError as exc:
                report.failures.append((str(f), str(exc)))
                done += 1
        if images and parts:
            for (f, image), labels in zip(images, parts_labels(segmenter, [im for _, im in images], parts)):
                report.results.append({"input": str(f), **write_parts(out, stems[f], image, labels)})
                done += 1
        elif images:
            results = segmenter.segment_batch([im for _, im in images])
            for (f, image), result in zip(images, results):
                stem = stems[f]
                h, w = image.shape[:2]
                mask_path = out.write_png(f"{stem}_mask.png", result.mask.astype(np.uint8) * 255)
                overlay_path = out.write_png(f"{stem}_overlay.png", overlay_image(image, result.mask))
                outputs = {"mask": str(mask_path), "overlay": str(overlay_path)}
                if result.labels is not None:
                    clusters = cluster_image(result.labels, h, w, result.foreground_clusters)
                    outputs["clusters"] = str(out.write_png(f"{stem}_clusters.png", clusters))
                report.results.append({"input": str(f), "width": w, "height": h, "outputs": outputs,
                                       **result.summary()})
                done += 1
        if progress:
            progress(done, len(files))
    return report


def parts_beyond_grid(segmenter, parts: int, height: int, width: int) -> str | None:
    grid = segmenter.grid_size(height, width)
    if grid is None or parts <= grid[0] * grid[1]:
        return None
    return f"{parts} parts is more than the {grid[0]}x{grid[1]} = {grid[0] * grid[1]} cells of the grid"


def write_parts(out: OutputDir, stem: str, image: np.ndarray, labels: np.ndarray) -> dict:
    """`<stem>_parts.png` (one colour per part, at the image's size) and `<stem>_parts_overlay.png`;
    returns the image's result row (size, output paths, cells per part)."""
    h, w = image.shape[:2]
    colours = parts_image(labels, h, w)
    outputs = {"parts": str(out.write_png(f"{stem}_parts.png", colours)),
               "parts_overlay": str(out.write_png(f"{stem}_parts_overlay.png", parts_overlay_image(image, colours)))}
    sizes = {str(c): int((labels == c).sum()) for c in np.unique(labels)}
    return {"width": w, "height": h, "outputs": outputs, "part_sizes": sizes}
