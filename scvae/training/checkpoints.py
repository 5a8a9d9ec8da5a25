"""Training checkpoints: model + optimiser/scheduler/step/RNG, written so a kill never loses the last good one.

Layout under a run's `checkpoints/` directory:

    step-00000200/model.safetensors, config.json, train_state.pt
    step-00000400/...
    latest              (text: the name of the newest complete checkpoint)

A checkpoint is assembled in a hidden temporary directory, every file fsynced, then renamed
into place; only then is `latest` replaced (atomically) and older ones pruned. A SIGKILL at
any moment leaves `latest` pointing at a complete checkpoint.
"""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import torch

from ..checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, load_model, safe_torch_load, save_model
from ..fileio import atomic_write_bytes, atomic_write_text, fsync_dir
from ..model import SCVAE

STATE_FILE = "train_state.pt"
LATEST_FILE = "latest"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


class CheckpointManager:
    def __init__(self, root: str | os.PathLike, keep: int = 2):
        self.root = Path(root)
        self.keep = max(1, keep)

    def save(self, step: int, model: SCVAE, train_state: dict) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self.root / step_dir_name(step)
        tmp = self.root / f".tmp-{final.name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        save_model(model, tmp, extra_metadata={"step": str(step)})
        buffer = io.BytesIO()
        torch.save(train_state, buffer)
        atomic_write_bytes(tmp / STATE_FILE, buffer.getvalue())
        if final.exists():
            # Re-saving a step (after a resume): move the old one aside first, so the name
            # is never half-written; `latest` may still point at it until the rename below.
            trash = self.root / f".old-{final.name}-{os.getpid()}"
            os.replace(final, trash)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(self.root)
        atomic_write_text(self.root / LATEST_FILE, final.name + "\n")
        self._prune(keep_name=final.name)
        return final

    def _step_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and _STEP_DIR.match(p.name)]
        return sorted(found, key=lambda p: p.name)

    def _prune(self, keep_name: str) -> None:
        dirs = [p for p in self._step_dirs() if p.name != keep_name]
        for old in dirs[: max(0, len(dirs) - (self.keep - 1))]:
            shutil.rmtree(old, ignore_errors=True)
        # Left by a kill mid-save: a half-written new checkpoint or a replaced old one.
        for stale in [*self.root.glob(".tmp-step-*"), *self.root.glob(".old-step-*")]:
            shutil.rmtree(stale, ignore_errors=True)

    @staticmethod
    def is_complete(path: Path) -> bool:
        return all((path / name).is_file() for name in (WEIGHTS_FILE, CONFIG_FILE, STATE_FILE))

    def latest(self) -> Path | None:
        """The newest complete checkpoint: the one `latest` names, else the newest complete step dir."""
        pointer = self.root / LATEST_FILE
        if pointer.is_file():
            named = self.root / pointer.read_text(encoding="utf-8").strip()
            if _STEP_DIR.match(named.name) and self.is_complete(named):
                return named
        for path in reversed(self._step_dirs()):
            if self.is_complete(path):
                return path
        return None

    @staticmethod
    def load(path: Path, map_location: str | torch.device = "cpu") -> tuple[SCVAE, dict]:
        model = load_model(path, map_location=map_location)
        state_file = path / STATE_FILE
        state = safe_torch_load(state_file, "training state", map_location)
        if not isinstance(state, dict) or "step" not in state:
            raise CheckpointError(f"{state_file}: not a training state (no step recorded)")
        return model, state
