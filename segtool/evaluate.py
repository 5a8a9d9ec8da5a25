"""`segtool eval`: methods x noise levels over a dataset's test split, scored strict and IEM.

Rows are appended to `results.csv` as images finish (flushed and fsynced per batch), so a
killed run loses at most one batch; `resume=True` skips the (method, noise, image) rows
already there, and the summary is always recomputed from the whole file, so a resumed run
ends with the same summary as an uninterrupted one.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .metrics import score_mask
from .noise import add_gaussian_noise

RESULT_FIELDS = ["dataset", "method", "noise", "index", "id", "iou", "dice", "iem_iou", "iem_dice", "inverse_better",
                 "foreground_fraction", "seconds"]


@dataclass
class EvalPlan:
    dataset: object                       # segtool.datasets.DatasetReader
    methods: list[tuple[str, object]]     # (label, Segmenter)
    noise_levels: list[float] = field(default_factory=lambda: [0.0])
    limit: int | None = None
    stride: int = 1                       # every stride-th image of the split (settings are chosen on stride 3)
    size: int = 128
    image_resize: str = "bilinear"
    seed: int = 0
    batch_size: int = 32
    out_dir: Path = Path("segtool-out/eval")
    resume: bool = False


def _row_key(row: dict) -> tuple[str, float, str]:
    return row["method"], round(float(row["noise"]), 6), row["id"]


def read_results(path: Path) -> list[dict]:
    """Rows of a results.csv; a last row torn by a kill is dropped."""
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if None in row.values() or any(row.get(k) in (None, "") for k in ("iou", "seconds")):
                continue
            rows.append(row)
    return rows


class ResultWriter:
    def __init__(self, path: Path, resume: bool):
        self.path = path
        exists = path.is_file() and path.stat().st_size > 0
        if exists and resume:
            self._truncate_torn_tail()
        self.file = path.open("a" if (exists and resume) else "w", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.file, fieldnames=RESULT_FIELDS)
        if not (exists and resume):
            self.writer.writeheader()
            self.flush()

    def _truncate_torn_tail(self) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            self.path.write_bytes(data[: data.rfind(b"\n") + 1])

    def write(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.writer.writerow(row)
        self.flush()

    def flush(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def summarise(rows: list[dict]) -> list[dict]:
    """Per (method, noise): means of the scores, foreground-choice accuracy, seconds per image."""
    groups: dict[tuple[str, float], list[dict]] = {}
    order: list[tuple[str, float]] = []
    for row in rows:
        key = (row["method"], round(float(row["noise"]), 6))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(row)
    summary = []
    for method, noise in order:
        g = groups[(method, noise)]

        def mean(name: str) -> float:
            return float(np.mean([float(r[name]) for r in g]))

        inverse = [str(r["inverse_better"]).lower() in ("true", "1") for r in g]
        summary.append({
            "method": method, "noise": noise, "images": len(g),
            "iou": mean("iou"), "dice": mean("dice"), "iem_iou": mean("iem_iou"), "iem_dice": mean("iem_dice"),
            "foreground_choice_correct": 1.0 - float(np.mean(inverse)),
            "seconds_per_image": mean("seconds"),
        })
    return summary


def run_eval(plan: EvalPlan, progress: Callable[[int, int], None] | None = None) -> dict:
    """Run the plan; returns the summary dict also written to summary.json."""
    from .protocol import iem_crop

    out = Path(plan.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.csv"
    done = {_row_key(r) for r in read_results(results_path)} if plan.resume else set()
    samples = plan.dataset.samples()[:: max(1, plan.stride)]
    if plan.limit is not None:
        samples = samples[: plan.limit]
    total = len(samples) * len(plan.noise_levels) * len(plan.methods)
    finished = sum(1 for s in samples for n in plan.noise_levels for label, _ in plan.methods
                   if (label, round(n, 6), s.id) in done)
    if progress:
        progress(finished, total)
    writer = ResultWriter(results_path, plan.resume)
    try:
        for start in range(0, len(samples), plan.batch_size):
            batch = list(enumerate(samples[start:start + plan.batch_size], start=start))
            todo = [(i, s) for i, s in batch
                    if any((label, round(n, 6), s.id) not in done for n in plan.noise_levels for label, _ in plan.methods)]
            if not todo:
                continue
            loaded = {}
            for i, s in todo:
                image, gt = plan.dataset.load(s)
                loaded[i] = iem_crop(image, gt, plan.size, plan.image_resize)
            for noise in plan.noise_levels:
                noisy = {i: add_gaussian_noise(loaded[i][0], noise, plan.seed, i) for i, _ in todo}
                for label, segmenter in plan.methods:
                    pending = [(i, s) for i, s in todo if (label, round(noise, 6), s.id) not in done]
                    if not pending:
                        continue
                    t0 = time.perf_counter()
                    results = segmenter.segment_batch([noisy[i] for i, _ in pending])
                    per_image = (time.perf_counter() - t0) / len(pending)
                    rows = []
                    for (i, s), result in zip(pending, results):
                        scores = score_mask(result.mask, loaded[i][1])
                        rows.append({"dataset": plan.dataset.name, "method": label, "noise": noise, "index": i,
                                     "id": s.id, "iou": f"{scores.iou:.6f}", "dice": f"{scores.dice:.6f}",
                                     "iem_iou": f"{scores.iem_iou:.6f}", "iem_dice": f"{scores.iem_dice:.6f}",
                                     "inverse_better": scores.inverse_better,
                                     "foreground_fraction": f"{result.foreground_fraction:.6f}",
                                     "seconds": f"{per_image:.6f}"})
                    writer.write(rows)
                    finished += len(rows)
                    if progress:
                        progress(finished, total)
    finally:
        writer.close()
    return write_summary(plan, out)


def write_summary(plan: EvalPlan, out: Path) -> dict:
    from scvae.fileio import atomic_write_text

    rows = read_results(out / "results.csv")
    wanted = {label for label, _ in plan.methods}
    rows = [r for r in rows if r["method"] in wanted and round(float(r["noise"]), 6) in
            {round(n, 6) for n in plan.noise_levels}]
    summary = {
        "dataset": plan.dataset.name, "root": str(getattr(plan.dataset, "root", "")),
        "protocol": {"size": plan.size, "image_resize": plan.image_resize, "mask_resize": "nearest",
                     "crop": "short side to size, centre crop", "noise": "gaussian on [0,1], clipped",
                     "seed": plan.seed},
        "limit": plan.limit,
        "stride": plan.stride,
        "methods": {label: {"class": type(seg).__name__, "settings": seg.settings()} for label, seg in plan.methods},
        "results": summarise(rows),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=_json_default) + "\n")
    if len(plan.noise_levels) > 1:
        plot_noise_sweep(summary["results"], out / "noise.png", plan.dataset.name)
    return summary


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def plot_noise_sweep(results: list[dict], path: Path, dataset: str) -> Path:
    """IoU against sigma, one curve per method (strict solid, IEM dashed): the paper's Fig. 10."""
    from .figures import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    methods = list(dict.fromkeys(r["method"] for r in results))
    for i, method in enumerate(methods):
        pts = sorted((r["noise"], r["iou"], r["iem_iou"]) for r in results if r["method"] == method)
        colour = f"C{i % 10}"
        ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", color=colour, label=f"{method} (strict)")
        ax.plot([p[0] for p in pts], [100 * p[2] for p in pts], marker="x", linestyle="--", color=colour,
                alpha=0.6, label=f"{method} (IEM)")
    ax.set_xlabel("noise sigma (images in [0, 1])")
    ax.set_ylabel("IoU (%)")
    ax.set_title(f"Noise robustness on {dataset}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    save_png(fig, path, dpi=110)
    return path


def format_percent(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"
