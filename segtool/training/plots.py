"""The loss-curve PNG written beside a training run."""

from __future__ import annotations

import json
from pathlib import Path


def read_log(path: Path) -> tuple[list[dict], list[dict]]:
    steps, checkpoints = [], []
    if not path.is_file():
        return steps, checkpoints
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        (checkpoints if row.get("kind") == "checkpoint" else steps).append(row)
    return steps, checkpoints


def plot_training_log(log_path: Path, png_path: Path) -> Path | None:
    """The loss (and held-out PSNR) curves of a run as a PNG; None, and nothing written, while the log
    has no step yet."""
    from segtool.io.figures import pyplot, save_png

    plt = pyplot()
    steps, checkpoints = read_log(log_path)
    if not steps:
        return None
    has_val = any("val_psnr" in c for c in checkpoints)
    fig, axes = plt.subplots(1, 2 if has_val else 1, figsize=(11 if has_val else 6, 4), squeeze=False)
    ax = axes[0][0]
    x = [r["step"] for r in steps]
    for key in ("loss", "recon", "latent", "kl"):   # the terms the backbone's loss has
        if all(key in r for r in steps):
            ax.plot(x, [r[key] for r in steps], label=key, linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_title("training loss")
    ax.legend()
    if has_val:
        vx = [c["step"] for c in checkpoints if "val_psnr" in c]
        ax2 = axes[0][1]
        ax2.plot(vx, [c["val_psnr"] for c in checkpoints if "val_psnr" in c], marker="o")
        ax2.set_xlabel("step")
        ax2.set_ylabel("PSNR (dB)")
        ax2.set_title("held-out reconstruction")
    return save_png(fig, png_path)
