"""Writing segmentation outputs without ever losing a user's file.

Every file is written whole (temporary file + rename), so a crash leaves no partial PNG.
An output folder remembers, in `.segtool-outputs.json`, which files segtool wrote: rerunning
replaces those, but a file of the same name that segtool did not write is never overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from segtool.errors import InputError, UsageError

LEDGER = ".segtool-outputs.json"
LEDGER_LOCK = ".segtool-outputs.lock"


class _locked:
    """An exclusive advisory lock on `path` (flock) for a with-block; where the platform has no
    fcntl, writers are not serialised (the ledger is still replaced atomically)."""

    def __init__(self, path: Path):
        self.path = path
        self.handle = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        self.handle = open(self.path, "a+")
        fcntl.flock(self.handle.fileno(), fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            import fcntl

            fcntl.flock(self.handle.fileno(), fcntl.LOCK_UN)
            self.handle.close()

# Distinct, colour-blind-friendly colours for cluster maps (Okabe-Ito, then Tableau).
PALETTE = np.array([
    [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66], [0, 114, 178], [213, 94, 0], [204, 121, 167],
    [120, 120, 120], [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
], dtype=np.uint8)


class OutputDir:
    def __init__(self, path: str | os.PathLike, inputs: list[Path], label: str = "output folder"):
        self.path = Path(path)
        self.label = label  # how messages name the folder: the command line passes its flag
        self._check_against_inputs(inputs)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".segtool-write-test-", dir=self.path)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise UsageError(f"{self.label} {self.path}: cannot write there ({exc.strerror or exc}); choose another folder") from None
        self.ledger_path = self.path / LEDGER
        self.owned = self._read_ledger()

    def _check_against_inputs(self, inputs: list[Path]) -> None:
        try:
            out = self.path.resolve()
        except (RuntimeError, OSError):  # a symbolic-link loop (RuntimeError before Python 3.13)
            raise UsageError(f"{self.label} {self.path}: is a symbolic link loop; choose another folder") from None
        for item in inputs:
            resolved = item.resolve()
            if out == resolved:
                raise UsageError(f"{self.label} {self.path}: is an input; outputs are never written over inputs. "
                                 "Choose another folder")
            folder = resolved if resolved.is_dir() else resolved.parent
            if out == folder:
                raise UsageError(f"{self.label} {self.path}: holds the input images; outputs there would mix with them "
                                 "(and be read as inputs next time). Choose another folder")
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.label} {self.path}: is a file; {self.label} must be a folder (it would not be overwritten)")

    def _read_ledger(self) -> set[str]:
        try:
            return set(json.loads(self.ledger_path.read_text(encoding="utf-8")).get("files", []))
        except (OSError, ValueError, AttributeError):
            return set()

    def _save_ledger(self) -> None:
        """Record what this run wrote, merged with what other runs into the same folder recorded
        meanwhile: read, merge and replace happen under an exclusive lock, so two `segment` runs
        into one folder both keep their entries."""
        from scvae.fileio import atomic_write_text

        with _locked(self.path / LEDGER_LOCK):
            self.owned |= self._read_ledger()
            atomic_write_text(self.ledger_path, json.dumps({"files": sorted(self.owned)}, indent=1) + "\n")

    def check_free(self, names: list[str], protected: set[Path]) -> None:
        """Refuse before writing anything if a name is taken by a file segtool did not write."""
        for name in names:
            target = self.path / name
            if target.resolve() in protected:
                raise InputError(f"{target}: would overwrite an input image; choose another {self.label}")
            if target.exists() and name not in self.owned:
                raise InputError(f"{target}: exists and was not written by segtool; move it or choose another {self.label}")

    def is_current(self, name: str, source: Path) -> bool:
        """True when segtool wrote `name` here after `source` last changed (a watched folder skips it)."""
        target = self.path / name
        try:
            return name in self.owned and target.stat().st_mtime_ns >= source.stat().st_mtime_ns
        except OSError:
            return False

    def write_png(self, name: str, array: np.ndarray) -> Path:
        return self.write_bytes(name, encode_png(array, self.path / name))

    def claim(self, names: list[str]) -> None:
        """Record `names` as segtool's before they are written: one ledger update for all of an
        image's files, and none for names already recorded (the ledger is rewritten whole, so one
        update per file made a folder run quadratic)."""
        new = set(names) - self.owned
        if new:
            self.owned |= new
            self._save_ledger()

    def write_bytes(self, name: str, data: bytes) -> Path:
        """Write one file whole and record it as segtool's (call `check_free` first)."""
        from scvae.fileio import atomic_write_bytes

        self.claim([name])
        target = self.path / name
        atomic_write_bytes(target, data)
        return target


class StreamOutput:
    """One PNG written to a binary stream (standard output) in place of a folder: nothing is
    written to disk, so there is nothing to protect."""

    path = Path("-")

    def __init__(self, stream):
        self.stream = stream

    def check_free(self, names: list[str], protected: set[Path]) -> None:
        return None

    def write_png(self, name: str, array: np.ndarray) -> Path:
        self.stream.write(encode_png(array, name))
        self.stream.flush()
        return self.path


def encode_png(array: np.ndarray, name) -> bytes:
    """PNG bytes of a grey, RGB or RGBA uint8 array."""
    import cv2

    if array.ndim == 2:
        data = array
    elif array.shape[2] == 4:
        data = array[..., [2, 1, 0, 3]]  # cv2 encodes BGRA
    else:
        data = array[..., ::-1]  # cv2 encodes BGR
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(data))
    if not ok:
        raise InputError(f"{name}: PNG encoding failed")
    return encoded.tobytes()


# Outline colours for overlays: saturated and far apart, so one of them stands out on any subject.
OUTLINE_COLOURS = np.array([[255, 40, 40], [40, 220, 40], [40, 100, 255], [255, 230, 0], [255, 0, 255],
                            [0, 230, 255]], dtype=np.uint8)


def contrasting_colour(image: np.ndarray, mask: np.ndarray) -> tuple[int, int, int]:
    """Of OUTLINE_COLOURS, the one farthest in Lab from the subject's mean colour (the whole image's
    when the mask is empty): a red outline on a red flower would vanish."""
    import cv2

    # cv2.mean with a mask: no copy of the foreground's pixels (0.4 s on a 12-megapixel photo)
    mean = np.array(cv2.mean(np.ascontiguousarray(image[..., :3]), mask=mask.astype(np.uint8) if mask.any() else None)[:3])
    mean = mean.round().astype(np.uint8)
    # numpy's Lab: OpenCV's first Lab conversion builds tables for 0.1-0.2 s of a cold start
    from segtool.io.colour import lab_image

    # L stretched to 0-255 as in 8-bit Lab: lightness contrast counts for more in an outline's
    # visibility than the Lab metric gives it (a yellow line on a red saucer, not a magenta one).
    lab = lab_image(np.vstack([OUTLINE_COLOURS, mean[None]])[None])[0] * np.array([2.55, 1.0, 1.0], np.float32)
    distances = np.linalg.norm(lab[:-1] - lab[-1], axis=1)
    return tuple(int(c) for c in OUTLINE_COLOURS[int(distances.argmax())])


def overlay_image(image: np.ndarray, mask: np.ndarray, colour=None, alpha: float = 0.25) -> np.ndarray:
    """The image with the foreground lightly tinted and its outline drawn, in `colour` or, by
    default, the colour that contrasts most with the subject."""
    import cv2

    colour = contrasting_colour(image, mask) if colour is None else colour
    out = image.astype(np.float32)
    tint = np.array(colour, dtype=np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * tint
    out = out.clip(0, 255).astype(np.uint8)
    thickness = max(1, round(min(image.shape[:2]) / 200))
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in colour), thickness)
    return out


def cutout_image(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGBA: the image, opaque on the foreground and transparent elsewhere."""
    return np.dstack([image, mask.astype(np.uint8) * 255])


def cluster_image(labels: np.ndarray, height: int, width: int, foreground: list[int]) -> np.ndarray:
    """The cluster map at image size: one colour per cluster, background clusters darkened."""
    import cv2

    colours = PALETTE[np.arange(labels.max() + 1) % len(PALETTE)].astype(np.float32)
    for c in range(len(colours)):
        if c not in foreground:
            colours[c] *= 0.45
    grid = colours[labels].astype(np.uint8)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_NEAREST)


def parts_image(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """A part map at image size: one palette colour per part, none darkened (there is no foreground)."""
    return cluster_image(labels, height, width, foreground=list(range(int(labels.max()) + 1)))


def parts_overlay_image(image: np.ndarray, parts: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The image half-tinted with its part map, the borders between parts drawn in black."""
    out = ((1 - alpha) * image.astype(np.float32) + alpha * parts.astype(np.float32)).round().astype(np.uint8)
    edge = np.zeros(parts.shape[:2], bool)
    edge[:, 1:] |= (parts[:, 1:] != parts[:, :-1]).any(axis=-1)
    edge[1:, :] |= (parts[1:, :] != parts[:-1, :]).any(axis=-1)
    out[edge] = 0
    return out
