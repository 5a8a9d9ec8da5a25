"""Command-line values shared by several commands, checked before any heavy import.

Each check raises UsageError (exit 2) naming the flag; the library's own checks name the
setting, and this layer is the only one that knows the flags.
"""

from __future__ import annotations

import math

from segtool.errors import UsageError


def pipeline_options(k: int | None, clustering: str | None, refine: str | None, rule: str | None = None) -> dict:
    """--k, --clustering (alias --method), --refine and --rule as pipeline settings."""
    from segtool.settings import CLUSTERINGS, REFINEMENTS, RULES

    if k is not None and k < 2:
        raise UsageError(f"--k {k}: need at least 2 clusters (one cluster cannot separate foreground from background)")
    if clustering is not None and clustering not in CLUSTERINGS:
        raise UsageError(f"--clustering {clustering!r}: choose {' or '.join(CLUSTERINGS)}")
    if refine is not None and refine not in REFINEMENTS:
        raise UsageError(f"--refine {refine!r}: choose {' or '.join(REFINEMENTS)}")
    if rule is not None and rule not in RULES:
        raise UsageError(f"--rule {rule!r}: choose {', '.join(RULES)}")
    return {"k": k, "method": clustering, "refine": refine, "rule": rule}


def parse_noise_levels(text: str) -> list[float]:
    """--noise '0,0.1,0.2' -> [0.0, 0.1, 0.2], sorted, without repeats."""
    levels = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise UsageError(f"--noise: {part!r} is not a number (give sigmas like 0,0.1,0.2)") from None
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"--noise: sigma must be a finite number >= 0, got {part}")
        levels.append(value)
    if not levels:
        raise UsageError("--noise: give at least one sigma, e.g. --noise 0 or --noise 0,0.1,0.2")
    return sorted(set(levels))


def check_device(device: str) -> str:
    from scvae.devices import DeviceError, check_device_name

    try:
        return check_device_name(device)
    except DeviceError as exc:
        raise UsageError(f"--{exc}") from None


def check_precision(precision: str) -> str:
    from scvae.devices import DeviceError, check_precision_name

    try:
        return check_precision_name(precision)
    except DeviceError as exc:
        raise UsageError(f"--{exc}") from None


WORKERS_HELP = "Images segmented at once, one per thread, after the model's forward pass. The masks do not depend on it."

PRECISION_HELP = ("auto (bfloat16 where the CPU or GPU computes it natively, e.g. AMX or AVX-512 BF16; else "
                  "float32) | float32 | bfloat16: the encoder's precision. The two give masks within noise of "
                  "each other; pin one to compare runs across machines.")


def parse_shard(text: str | None, environ=None) -> tuple[int, int]:
    """--shard 'I/N' (0 <= I < N: every N-th image from the I-th) -> (I, N); 'auto' takes I and N
    from torchrun's RANK and WORLD_SIZE, so one command line serves every process it launches."""
    import os

    if text is None:
        return 0, 1
    if text == "auto":
        env = os.environ if environ is None else environ
        if "RANK" not in env or "WORLD_SIZE" not in env:
            raise UsageError("--shard auto: RANK and WORLD_SIZE are not set (run under torchrun, or give --shard I/N)")
        text = f"{env['RANK']}/{env['WORLD_SIZE']}"
    first, sep, count = text.partition("/")
    try:
        i, n = int(first), int(count)
    except ValueError:
        i = n = -1
    if not sep or n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard {text!r}: give I/N with 0 <= I < N, e.g. --shard 0/4 ... --shard 3/4 (or auto)")
    return i, n


def check_cache_dir(path) -> None:
    """--cache-dir: a folder segtool can create and write to (None: the default, checked when used)."""
    import os
    from pathlib import Path

    if path is None:
        return
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--cache-dir {path}: is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--cache-dir {path}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"--cache-dir {path}: not writable; choose another folder")
