"""Named models shipped inside the package: `scvae.load("name")` works offline.

Each entry is a directory `scvae/weights/<name>/` holding `model.safetensors` and
`config.json` (and its model card, MODEL_CARD.md). A path to any checkpoint works as well.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .checkpoint import CheckpointError, WEIGHTS_FILE, load_model
from .model import SCVAE

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "scvae-small-in1k"


def available_models() -> list[str]:
    if not WEIGHTS_DIR.is_dir():
        return []
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / WEIGHTS_FILE).is_file())


def resolve(name_or_path: str | os.PathLike) -> Path:
    """A shipped model's directory by name, or the given path if it exists."""
    text = str(name_or_path)
    shipped = WEIGHTS_DIR / text
    if os.sep not in text and "/" not in text and (shipped / WEIGHTS_FILE).is_file():
        return shipped
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    names = ", ".join(available_models()) or "none"
    raise CheckpointError(f"{text}: neither a shipped model name (available: {names}) nor an existing path")


def load(name_or_path: str | os.PathLike = DEFAULT_MODEL, device: str | torch.device = "cpu") -> SCVAE:
    """Load a shipped model by name or any checkpoint by path, in eval mode."""
    return load_model(resolve(name_or_path), map_location=device)
