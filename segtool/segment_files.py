"""`segtool segment`: files, folders and globs -> mask, overlay, cluster-map and cut-out PNGs (or,
with `parts`, part maps: n regions and no foreground choice).

Good inputs are processed even when others fail; the failures are reported at the end and
make the exit status 1.

Output names: `<stem>_<kind>.png`, the input's file name without its suffix. Only inputs whose
stems clash (a/img.jpg and b/img.jpg in one run) get their folder's name in front
(`a_img_mask.png`, `b_img_mask.png`); every other input keeps its plain stem, whatever else is
on the command line. Same folder and stem (img.jpg, img.png) adds `-2`, `-3` in input order.
"""

from __future__ import annotations

import glob
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from segtool.errors import InputError
from segtool.io.images import DEFAULT_MAX_PIXELS, load_image, looks_like_image
from segtool.pipeline.parts import parts_labels
from segtool.pipeline.registry import k_beyond_grid
from segtool.io.outputs import OutputDir, cluster_image, cutout_image, overlay_image, parts_image, parts_overlay_image

GLOB_CHARS = set("*?[")
OUTPUT_KINDS = ("mask", "overlay", "clusters", "cutout")
DEFAULT_KINDS = ("mask", "overlay", "clusters")
PARTS_KINDS = ("parts", "parts_overlay")   # the kinds of a run with `parts` (it makes no mask)


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
            images = folder_images(path)
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


def folder_images(folder: Path) -> list[Path]:
    """The image files of a folder (not recursive), sorted."""
    return sorted(p for p in folder.iterdir() if (p.is_file() or p.is_symlink()) and looks_like_image(p))


def output_stems(files: list[Path], taken: dict[Path, str] | None = None) -> dict[Path, str]:
    """A distinct output stem per input: the file stem, prefixed by its folder name only when
    another input has the same stem. `taken` are stems already given (a watched folder keeps
    them): those files keep theirs and no new file gets one of them."""
    taken = dict(taken or {})
    counts: dict[str, int] = {}
    for f in files:
        counts[f.stem] = counts.get(f.stem, 0) + 1
    used = set(taken.values())
    stems: dict[Path, str] = {}
    for f in files:
        if f in taken:
            stems[f] = taken[f]
            continue
        stem = f.stem if counts[f.stem] == 1 else f"{f.parent.name or 'root'}_{f.stem}"
        candidate, n = stem, 2
        while candidate in used:
            candidate, n = f"{stem}-{n}", n + 1
        used.add(candidate)
        stems[f] = candidate
    return stems


def output_names(stem: str, kinds: tuple[str, ...]) -> list[str]:
    return [f"{stem}_{kind}.png" for kind in kinds]


def check_kinds(kinds: tuple[str, ...] | None, parts: int | None = None) -> tuple[str, ...]:
    """The kinds to write: `kinds`, checked against the mode (part maps with `parts`, masks
    without), or the mode's default when None."""
    allowed, default = (PARTS_KINDS, PARTS_KINDS) if parts else (OUTPUT_KINDS, DEFAULT_KINDS)
    if kinds is None:
        return default
    unknown = [k for k in kinds if k not in allowed]
    if unknown or not kinds:
        raise ValueError(f"output kinds {kinds!r}: choose among {', '.join(allowed)}"
                         f"{' (with parts)' if parts else ''}")
    return tuple(kinds)


def _render(kind: str, image: np.ndarray, result) -> np.ndarray | None:
    if kind == "mask":
        return result.mask.astype(np.uint8) * 255
    if kind == "overlay":
        return overlay_image(image, result.mask)
    if kind == "cutout":
        return cutout_image(image, result.mask)
    if result.labels is None:  # a method that clusters no grid has no cluster map
        return None
    return cluster_image(result.labels, *image.shape[:2], result.foreground_clusters)


def segment_files(specs: list[str], segmenter, out_dir, max_pixels: int = DEFAULT_MAX_PIXELS,
                  batch_size: int = 8, progress: Callable[[int, int], None] | None = None,
                  kinds: tuple[str, ...] | None = None, on_image: Callable[[dict], None] | None = None,
                  parts: int | None = None) -> SegmentReport:
    """Segment every image the specs name and write `kinds` of output per image (DEFAULT_KINDS when
    None). With `parts`, part maps instead of masks (PARTS_KINDS; one K-means into that many
    regions, no foreground choice: see `write_parts`).

    `out_dir` is a folder (`io.outputs.OutputDir` is made for it) or an object with its
    `check_free` and `write_png` (e.g. `io.outputs.StreamOutput`). `progress(done, total)` is
    called after each image, `on_image(row)` with each image's result row as it is written."""
    files, problems = collect_inputs(specs)
    report = SegmentReport(failures=list(problems))
    if not files:
        return report
    out = out_dir
    if isinstance(out_dir, (str, Path)):
        # Folders named on the command line and every expanded file (globs included): --out may be
        # none of them, nor the folder an input image sits in.
        folders = [Path(s).expanduser() for s in specs if Path(s).expanduser().is_dir()]
        out = OutputDir(out_dir, folders + files)
    segment_listed(files, output_stems(files), segmenter, out, report, kinds=kinds, max_pixels=max_pixels,
                   batch_size=batch_size, progress=progress, on_image=on_image, parts=parts)
    return report


def segment_listed(files: list[Path], stems: dict[Path, str], segmenter, out, report: SegmentReport, *,
                   kinds: tuple[str, ...] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS, batch_size: int = 8,
                   progress: Callable[[int, int], None] | None = None,
                   on_image: Callable[[dict], None] | None = None, parts: int | None = None) -> None:
    """Segment `files` (already collected) into `out`, naming outputs by `stems`; results and
    failures are added to `report`."""
    kinds = check_kinds(kinds, parts)
    if parts and not hasattr(segmenter, "feature_grids"):
        raise ValueError(f"parts: {type(segmenter).__name__} clusters no grid of features; use a grid method "
                         "(scvae, colour)")
    protected = {f.resolve() for f in files}
    done = 0

    def count_one() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, len(files))

    if progress:
        progress(done, len(files))

    def load_batch(batch: list[Path]) -> list[tuple[Path, np.ndarray | None, str | None]]:
        loaded = []
        for f in batch:
            try:
                out.check_free(output_names(stems[f], kinds), protected)
                image = load_image(f, max_pixels=max_pixels)
                problem = parts_beyond_grid(segmenter, parts, *image.shape[:2]) if parts else \
                    k_beyond_grid(segmenter, *image.shape[:2])
                if problem:
                    option = "--parts" if parts else "--k"
                    raise InputError(f"{f}: {option} is too large for this image: {problem}; choose a smaller {option}")
                loaded.append((f, image, None))
            except InputError as exc:
                loaded.append((f, None, str(exc)))
        return loaded

    batches = [files[start:start + batch_size] for start in range(0, len(files), batch_size)]
    for loaded in prefetched(load_batch, batches):
        images: list[tuple[Path, np.ndarray]] = []
        for f, image, error in loaded:
            if error is not None:
                report.failures.append((str(f), error))
                count_one()
            else:
                images.append((f, image))
        pixels = [im for _, im in images]
        if parts:
            rows = (write_parts(out, stems[f], image, labels, kinds)
                    for (f, image), labels in zip(images, parts_labels(segmenter, pixels, parts)))
        else:
            # One result at a time, so outputs land (and progress moves) per image, not per batch.
            one_by_one = getattr(segmenter, "iter_batch", segmenter.segment_batch)
            rows = (write_outputs(out, stems[f], image, result, kinds)
                    for (f, image), result in zip(images, one_by_one(pixels)))
        for (f, _), row in zip(images, rows):
            row = {"input": str(f), **row}
            report.results.append(row)
            if on_image:
                on_image(row)
            count_one()


def prefetched(load: Callable, batches: list):
    """load(batch) for each batch in order, the next one loading in a second thread while the caller
    works on the current one: decoding a JPEG runs outside the GIL, so a folder costs about
    max(decode, segment) per image, not the sum. The thread is a daemon, so Ctrl-C never waits
    for it; an error in it is raised here."""
    import threading

    def start(batch):
        box: dict = {}

        def run():
            try:
                box["value"] = load(batch)
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread, box

    upcoming = start(batches[0]) if batches else None
    for index in range(len(batches)):
        thread, box = upcoming
        thread.join()
        upcoming = start(batches[index + 1]) if index + 1 < len(batches) else None
        if "error" in box:
            raise box["error"]
        yield box["value"]


def write_kinds(out, stem: str, kinds: tuple[str, ...], picture: Callable[[str], np.ndarray | None]) -> dict:
    """`<stem>_<kind>.png` for each kind `picture(kind)` draws (None: this image has no such
    picture); returns {kind: path written}."""
    if hasattr(out, "claim"):
        out.claim([f"{stem}_{kind}.png" for kind in kinds])  # one ledger update for the image's files
    outputs = {}
    for kind in kinds:
        array = picture(kind)
        if array is not None:
            outputs[kind] = str(out.write_png(f"{stem}_{kind}.png", array))
    return outputs


def write_outputs(out, stem: str, image: np.ndarray, result, kinds: tuple[str, ...]) -> dict:
    """The `kinds` of one segmented image; returns its result row (size, output paths, summary)."""
    h, w = image.shape[:2]
    outputs = write_kinds(out, stem, kinds, lambda kind: _render(kind, image, result))
    return {"width": w, "height": h, "outputs": outputs, **result.summary()}


def parts_beyond_grid(segmenter, parts: int, height: int, width: int) -> str | None:
    grid = segmenter.grid_size(height, width)
    if grid is None or parts <= grid[0] * grid[1]:
        return None
    return f"{parts} parts is more than the {grid[0]}x{grid[1]} = {grid[0] * grid[1]} cells of the grid"


def write_parts(out, stem: str, image: np.ndarray, labels: np.ndarray, kinds: tuple[str, ...] = PARTS_KINDS) -> dict:
    """`<stem>_parts.png` (one colour per part, at the image's size) and `<stem>_parts_overlay.png`,
    those of them in `kinds`; returns the image's result row (size, output paths, cells per part)."""
    h, w = image.shape[:2]
    colours = parts_image(labels, h, w)
    outputs = write_kinds(out, stem, kinds,
                          lambda kind: colours if kind == "parts" else parts_overlay_image(image, colours))
    sizes = {str(c): int((labels == c).sum()) for c in np.unique(labels)}
    return {"width": w, "height": h, "outputs": outputs, "part_sizes": sizes}


def watch_folder(folder: str | Path, segmenter, out: OutputDir, *, kinds: tuple[str, ...] | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, batch_size: int = 8, interval: float = 0.5,
                 on_image: Callable[[dict], None] | None = None,
                 on_failure: Callable[[str, str], None] | None = None, polls: int | None = None,
                 parts: int | None = None) -> SegmentReport:
    """Segment the images of `folder` that have no current outputs in `out`, then every image that
    lands or changes there, until interrupted (KeyboardInterrupt) or after `polls` polls.

    The folder is polled every `interval` seconds; an image is read once its size and
    modification time have not changed between two polls, so a file still being copied in is
    not read half-written. A failed image is retried only when it changes."""
    folder = Path(folder)
    kinds = check_kinds(kinds, parts)
    report = SegmentReport()
    stems: dict[Path, str] = {}
    handled: dict[Path, tuple[int, int]] = {}   # image -> (mtime, size) when last segmented or refused
    last_seen: dict[Path, tuple[int, int]] = {}
    first = True
    poll = 0
    while polls is None or poll < polls:
        poll += 1
        ready = []
        try:
            files = folder_images(folder)
        except OSError:
            files = []  # the folder vanished or is unreadable for a moment: try again next poll
        stems = output_stems(files, {f: s for f, s in stems.items() if f in files})
        for f in files:
            try:
                stat = f.stat()
            except OSError:
                continue  # removed (or a broken link) since the listing
            signature = (stat.st_mtime_ns, stat.st_size)
            if handled.get(f) == signature:
                continue
            if first and out.is_current(f"{stems[f]}_{kinds[0]}.png", f):
                handled[f] = signature   # segmented by an earlier run, unchanged since
                continue
            if last_seen.get(f) == signature:
                ready.append(f)
            last_seen[f] = signature
        first = False
        if ready:
            failures_before = len(report.failures)
            segment_listed(ready, stems, segmenter, out, report, kinds=kinds, max_pixels=max_pixels,
                           batch_size=batch_size, on_image=on_image, parts=parts)
            for f in ready:
                handled[f] = last_seen[f]
            if on_failure:
                for item, error in report.failures[failures_before:]:
                    on_failure(item, error)
        time.sleep(interval)
    return report
