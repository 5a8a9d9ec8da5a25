"""`segtool eval`: methods x noise levels over one or more datasets' test splits, scored strict and IEM.

Several datasets make a benchmark suite: every row of results.csv names its dataset, the summary
has one block of results per set, the mean over sets, and the paired per-image difference of each
method against the first (mean and standard error), per set and over the suite. Each result also
carries its figure on the images outside the selection subset (index % 3 != 0 of a full run), the
figure that settings and fitted scorers never saw. `FORMAT_VERSION` names this layout.

Rows are appended to `results.csv` as images finish (flushed and fsynced per batch), so a
killed run loses at most one batch; `resume=True` skips the (method, noise, image) rows
already there, and the summary is always recomputed from the whole file, so a resumed run
ends with the same summary as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from segtool.evaluation.results import ResultWriter, merge_run_record, read_results, safe_name, write_run_record
from segtool.evaluation.metrics import BOUNDARY_TOLERANCE, score_mask
from segtool.evaluation.noise import add_gaussian_noise
from segtool.settings import EVAL_PROTOCOLS as PROTOCOLS, EVAL_SUBSETS as SUBSETS

FORMAT_VERSION = 3        # 3: a boundary_f column, the protocol named in run.json

SELECTION_STRIDE = 3      # settings are chosen and scorers fit on every third image (index % 3 == 0)


@dataclass
class EvalPlan:
    """What an eval run does: methods x noise levels over one or more datasets.

    Parameters
    ----------
    datasets : list of DatasetReader
        Each with a distinct `name` (folder sets are named by their folder).
    methods : list of (label, Segmenter)
        The first is the reference of the paired differences.
    noise_levels : list of float, default [0.0]
        Gaussian sigmas on [0, 1] images.
    limit, stride, subset : which images: the first `limit`, every `stride`-th, and all | selection
        (index % 3 == 0) | held-out (the rest).
    shard : (i, n): of those, every n-th from the i-th; n shards of one plan, merged by
        `segtool.evaluation.merge`, give the rows and summary of the unsharded run.
    precision : the model's encoder precision, recorded in run.json (None when no method runs a model).
    size, image_resize : the IEM crop (short side to `size`, centre square) and how images are resized.
    protocol : "iem" (that crop) or "native" (every image and mask at its own size, no resize or crop).
    seed : seeds the noise. batch_size : images per segment_batch call.
    out_dir : where results.csv, run.json and summary.json go. resume : continue a run there.
    """

    datasets: list                        # segtool.data.readers.DatasetReader, each with a distinct name
    methods: list[tuple[str, object]]     # (label, Segmenter)
    noise_levels: list[float] = field(default_factory=lambda: [0.0])
    limit: int | None = None
    stride: int = 1                       # every stride-th image of the split (settings are chosen on stride 3)
    size: int = 128
    image_resize: str = "bilinear"
    protocol: str = "iem"                 # iem: the size x size crop; native: each image at its own size
    seed: int = 0
    batch_size: int = 32
    out_dir: Path = Path("segtool-out/eval")
    resume: bool = False
    subset: str = "all"                   # all | selection (index % 3 == 0) | held-out (the other images)
    shard: tuple[int, int] = (0, 1)       # (i, n): every n-th image of the plan from the i-th
    save_masks: bool = False              # every mask as a PNG under out_dir/masks/
    precision: str | None = None          # the encoder's (float32 | bfloat16) when a method runs a model

    def __post_init__(self) -> None:
        if not isinstance(self.datasets, (list, tuple)):
            self.datasets = [self.datasets]
        names = [reader.name for reader in self.datasets]
        if not names:
            raise ValueError("no dataset to evaluate")
        if len(set(names)) != len(names):
            raise ValueError(f"two datasets have the same name ({', '.join(names)}); rows could not be told apart")
        if self.subset not in SUBSETS:
            raise ValueError(f"subset {self.subset!r}: choose {', '.join(SUBSETS)}")
        if self.subset != "all" and self.stride != 1:
            raise ValueError("a subset (selection or held-out) is defined on the full split: use stride 1 with it")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r}: choose {', '.join(PROTOCOLS)}")
        i, n = self.shard
        if not (n >= 1 and 0 <= i < n):
            raise ValueError(f"shard {i}/{n}: need 0 <= i < n")


def row_key(row: dict) -> tuple[str, str, float, str]:
    return row["dataset"], row["method"], round(float(row["noise"]), 6), row["id"]


def _held_out(row: dict) -> bool:
    return int(row["index"]) % SELECTION_STRIDE != 0


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _grouped(rows: list[dict], key) -> dict:
    groups: dict = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups


def summarise(rows: list[dict], held_out: bool = False) -> list[dict]:
    """Per (dataset, method, noise): means of the scores, foreground-choice accuracy, seconds per image,
    and (`held_out`, for runs over every image) the strict and IEM IoU outside the selection subset."""
    summary = []
    for (dataset, method, noise), g in _grouped(rows, lambda r: (r["dataset"], r["method"],
                                                                 round(float(r["noise"]), 6))).items():
        def mean(name: str, subset=g) -> float:
            return _mean([float(r[name]) for r in subset])

        inverse = [str(r["inverse_better"]).lower() in ("true", "1") for r in g]
        entry = {
            "dataset": dataset, "method": method, "noise": noise, "images": len(g),
            "iou": mean("iou"), "dice": mean("dice"), "iem_iou": mean("iem_iou"), "iem_dice": mean("iem_dice"),
            "boundary_f": mean("boundary_f"),
            "foreground_choice_correct": 1.0 - float(np.mean(inverse)),
            "seconds_per_image": mean("seconds"),
        }
        if held_out:
            outside = [r for r in g if _held_out(r)]
            entry["held_out"] = {"images": len(outside), "iou": mean("iou", outside),
                                 "iem_iou": mean("iem_iou", outside)}
        summary.append(entry)
    return summary


def mean_over_sets(results: list[dict]) -> list[dict]:
    """Per (method, noise): the unweighted mean of the per-set figures (each kind of image counts once)."""
    out = []
    for (method, noise), g in _grouped(results, lambda r: (r["method"], r["noise"])).items():
        entry = {"method": method, "noise": noise, "sets": len(g), "images": sum(r["images"] for r in g)}
        for key in ("iou", "dice", "iem_iou", "iem_dice", "boundary_f", "foreground_choice_correct", "seconds_per_image"):
            entry[key] = _mean([r[key] for r in g])
        if all("held_out" in r for r in g):
            entry["held_out"] = {"iou": _mean([r["held_out"]["iou"] for r in g]),
                                 "iem_iou": _mean([r["held_out"]["iem_iou"] for r in g])}
        out.append(entry)
    return out


def paired_difference(a: dict[str, float], b: dict[str, float]) -> dict:
    """Mean and standard error of b - a over the keys both have (per-image scores)."""
    common = sorted(a.keys() & b.keys())
    diffs = np.array([b[key] - a[key] for key in common], dtype=np.float64)
    n = len(diffs)
    se = float(diffs.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    return {"images": n, "mean": float(diffs.mean()) if n else float("nan"), "se": se,
            "better": float((diffs > 0).mean()) if n else float("nan")}


def paired_against_first(rows: list[dict], methods: list[str], held_out: bool = False) -> list[dict]:
    """Each method after the first against the first, per image: per set and over the whole suite.

    A difference within about two standard errors is not a measured difference.
    """
    if len(methods) < 2:
        return []
    scores: dict = {}
    for row in rows:
        scores.setdefault((row["method"], round(float(row["noise"]), 6)), {})[(row["dataset"], row["id"])] = row
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    noises = sorted({round(float(r["noise"]), 6) for r in rows})
    out = []
    for noise in noises:
        first = scores.get((methods[0], noise), {})
        for method in methods[1:]:
            other = scores.get((method, noise), {})
            for dataset in [*datasets, None] if len(datasets) > 1 else datasets:
                def pick(table, keep=lambda r: True, score="iou"):
                    return {k: float(r[score]) for k, r in table.items()
                            if (dataset is None or k[0] == dataset) and keep(r)}

                entry = {"dataset": dataset or "all sets", "method": method, "against": methods[0], "noise": noise,
                         "iou": paired_difference(pick(first), pick(other)),
                         "boundary_f": paired_difference(pick(first, score="boundary_f"),
                                                         pick(other, score="boundary_f"))}
                if held_out:
                    entry["held_out_iou"] = paired_difference(pick(first, _held_out), pick(other, _held_out))
                out.append(entry)
    return out


def run_eval(plan: EvalPlan, progress: Callable[[int, int], None] | None = None) -> dict:
    """Run the plan; returns the summary dict also written to summary.json."""
    out = Path(plan.out_dir)
    results_path = out / "results.csv"
    # Read and check everything there before writing anything: a file that is not ours is refused.
    done = {row_key(r) for r in read_results(results_path)} if plan.resume else set()
    record = merge_run_record(out, run_record(plan)) if plan.resume else run_record(plan)
    out.mkdir(parents=True, exist_ok=True)
    write_run_record(out, record)
    work = [(reader, plan_samples(plan, reader)) for reader in plan.datasets]
    total = sum(len(samples) for _, samples in work) * len(plan.noise_levels) * len(plan.methods)
    finished = sum(1 for reader, samples in work for _, s in samples for n in plan.noise_levels
                   for label, _ in plan.methods if (reader.name, label, round(n, 6), s.id) in done)
    if progress:
        progress(finished, total)
    writer = ResultWriter(results_path, plan.resume)
    try:
        for reader, samples in work:
            finished = _run_dataset(plan, reader, samples, done, writer, finished, total, progress)
    finally:
        writer.close()
    return write_summary(plan, out)


def check_resume(plan: EvalPlan) -> None:
    """Read and check what a resumed run would continue, writing nothing: a results.csv or run.json
    that is not ours, or other settings, are refused before any work starts."""
    out = Path(plan.out_dir)
    read_results(out / "results.csv")
    merge_run_record(out, run_record(plan))


def run_record(plan: EvalPlan) -> dict:
    """What the rows of this run depend on, written as run.json beside results.csv; with the
    orders and image choice a merge of shards needs to rebuild the unsharded run's files."""
    return {"format_version": FORMAT_VERSION, "seed": plan.seed, "protocol": plan.protocol,
            "size": plan.size if plan.protocol == "iem" else None, "image_resize": plan.image_resize,
            "stride": plan.stride,
            "methods": {label: json.loads(json.dumps({"class": type(seg).__name__, "settings": seg.settings()},
                                                     default=_json_default)) for label, seg in plan.methods},
            "datasets": {reader.name: str(Path(getattr(reader, "root", "")).absolute()) for reader in plan.datasets},
            "method_order": [label for label, _ in plan.methods],
            "dataset_order": [reader.name for reader in plan.datasets],
            "noise_levels": list(plan.noise_levels), "limit": plan.limit, "subset": plan.subset,
            "batch_size": plan.batch_size, "shard": list(plan.shard), "precision": plan.precision}


def plan_samples(plan: EvalPlan, reader) -> list[tuple[int, object]]:
    """(index, sample) pairs the plan evaluates; the index seeds the noise and marks the selection
    subset, so a shard's rows are the rows the unsharded run gives for the same images."""
    indexed = list(enumerate(reader.samples()[:: max(1, plan.stride)]))
    if plan.subset != "all":
        keep_selection = plan.subset == "selection"
        indexed = [(i, s) for i, s in indexed if (i % SELECTION_STRIDE == 0) == keep_selection]
    if plan.limit is not None:
        indexed = indexed[: plan.limit]
    first, count = plan.shard
    return indexed[first::count]


def _run_dataset(plan: EvalPlan, reader, samples: list, done: set, writer: "ResultWriter", finished: int, total: int,
                 progress) -> int:
    """Evaluate one dataset of the plan in batches; returns the updated count of finished rows."""
    from segtool.evaluation.protocol import iem_crop

    def pending_key(label, noise, sample):
        return (reader.name, label, round(noise, 6), sample.id)

    for start in range(0, len(samples), plan.batch_size):
        batch = samples[start:start + plan.batch_size]
        todo = [(i, s) for i, s in batch
                if any(pending_key(label, n, s) not in done for n in plan.noise_levels for label, _ in plan.methods)]
        if not todo:
            continue
        loaded = {}
        for i, s in todo:
            image, gt = reader.load(s)
            loaded[i] = iem_crop(image, gt, plan.size, plan.image_resize) if plan.protocol == "iem" else (image, gt.astype(bool))
        for noise in plan.noise_levels:
            noisy = {i: add_gaussian_noise(loaded[i][0], noise, plan.seed, i) for i, _ in todo}
            for label, segmenter in plan.methods:
                pending = [(i, s) for i, s in todo if pending_key(label, noise, s) not in done]
                if not pending:
                    continue
                t0 = time.perf_counter()
                # One result at a time where the segmenter can, so the progress bar moves per image;
                # rows are still written per batch (one fsync) with the batch's mean time per image.
                one_by_one = getattr(segmenter, "iter_batch", segmenter.segment_batch)
                results = []
                for result in one_by_one([noisy[i] for i, _ in pending]):
                    results.append(result)
                    if progress:
                        progress(finished + len(results), total)
                per_image = (time.perf_counter() - t0) / len(pending)
                rows = []
                for (i, s), result in zip(pending, results):
                    scores = score_mask(result.mask, loaded[i][1])
                    rows.append({"dataset": reader.name, "method": label, "noise": noise, "index": i,
                                 "id": s.id, "iou": f"{scores.iou:.6f}", "dice": f"{scores.dice:.6f}",
                                 "iem_iou": f"{scores.iem_iou:.6f}", "iem_dice": f"{scores.iem_dice:.6f}",
                                 "boundary_f": f"{scores.boundary_f:.6f}",
                                 "inverse_better": scores.inverse_better,
                                 "foreground_fraction": f"{result.foreground_fraction:.6f}",
                                 "truth_fraction": f"{float(loaded[i][1].mean()):.6f}",
                                 "seconds": f"{per_image:.6f}"})
                writer.write(rows)
                if plan.save_masks:
                    for (i, s), result in zip(pending, results):
                        save_eval_mask(plan.out_dir, reader.name, label, noise, s.id, result.mask)
                finished += len(rows)
                if progress:
                    progress(finished, total)
    return finished


def plan_rows(plan: EvalPlan, out: Path) -> list[dict]:
    """The rows of results.csv this plan asks for: a resumed run with a smaller --limit, fewer
    methods or other noise levels reports what it says it reports."""
    wanted = {(reader.name, label, round(n, 6), s.id) for reader in plan.datasets for _, s in plan_samples(plan, reader)
              for label, _ in plan.methods for n in plan.noise_levels}
    return [r for r in read_results(out / "results.csv") if row_key(r) in wanted]


def save_eval_mask(out: Path, dataset: str, method: str, noise: float, image_id: str, mask: np.ndarray) -> Path:
    """masks/<set>/<method>/sigma-<noise>/<id>.png: 0/255 at the protocol crop's size."""
    from scvae.fileio import atomic_write_bytes
    from segtool.io.outputs import encode_png

    path = Path(out) / "masks" / safe_name(dataset) / safe_name(method) / f"sigma-{noise:g}" / f"{safe_name(image_id)}.png"
    atomic_write_bytes(path, encode_png(mask.astype(np.uint8) * 255, path))
    return path


def write_summary(plan: EvalPlan, out: Path) -> dict:
    rows = plan_rows(plan, out)
    images = {reader.name: len(plan_samples(plan, reader)) for reader in plan.datasets}
    return save_summary(build_summary(rows, run_record(plan), images), out)


def build_summary(rows: list[dict], record: dict, images: dict[str, int]) -> dict:
    """The summary of a run from its rows and run record alone (no dataset is opened), so that
    merged shards summarise exactly as the unsharded run does."""
    held_out = record["stride"] == 1 and record["limit"] is None and record["subset"] != "selection"
    results = summarise(rows, held_out=held_out)
    names = record["dataset_order"]
    empty = {name: sorted({r["id"] for r in rows if r["dataset"] == name and float(r["truth_fraction"]) == 0})
             for name in names}
    summary = {
        "format_version": FORMAT_VERSION,
        "dataset": ", ".join(names),
        "datasets": [{"name": name, "root": record["datasets"][name], "images": images[name],
                      "empty_masks": empty[name]} for name in names],
        "protocol": ({"name": "iem", "size": record["size"], "image_resize": record["image_resize"],
                      "mask_resize": "nearest", "crop": "short side to size, centre crop"}
                     if record["protocol"] == "iem" else
                     {"name": "native", "size": None, "image_resize": "none", "crop": "none: each image at its own size"})
                    | {"noise": "gaussian on [0,1], clipped", "seed": record["seed"],
                       "boundary_tolerance_pixels": BOUNDARY_TOLERANCE},
        "limit": record["limit"],
        "stride": record["stride"],
        "subset": record["subset"],
        "held_out": (f"images with index % {SELECTION_STRIDE} != 0, never used to choose settings or fit scorers"
                     if held_out else None),
        "methods": {label: record["methods"][label] for label in record["method_order"]},
        "precision": record.get("precision"),  # the encoder's; absent from runs recorded before it was
        "results": results,
        "mean_over_sets": mean_over_sets(results),
        "paired": paired_against_first(rows, record["method_order"], held_out=held_out),
    }
    if record["shard"][1] > 1:
        summary["shard"] = record["shard"]
    return summary


def save_summary(summary: dict, out: Path) -> dict:
    """summary.json, and a noise plot per set when there are several noise levels."""
    from scvae.fileio import atomic_write_text

    atomic_write_text(out / "summary.json", summary_json(summary))
    noises = {r["noise"] for r in summary["results"]}
    if len(noises) > 1:
        names = [entry["name"] for entry in summary["datasets"]]
        for name in names:
            plot = "noise.png" if len(names) == 1 else f"noise-{name}.png"
            entry = next(e for e in summary["datasets"] if e["name"] == name)
            plot_noise_sweep([r for r in summary["results"] if r["dataset"] == name], out / plot, name, entry["images"])
    return summary


def summary_json(summary: dict) -> str:
    """The text of summary.json (also what `eval --json` prints)."""
    return json.dumps(_finite_or_null(summary), indent=2, default=_json_default, allow_nan=False) + "\n"


def _finite_or_null(value):
    """NaN and infinities as null: summary.json must be valid JSON (a set with no held-out images has no mean)."""
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(v) for v in value]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    return value


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def plot_noise_sweep(results: list[dict], path: Path, dataset: str, images: int | None = None) -> Path:
    """IoU against sigma, one curve per method (strict solid, IEM dashed): the paper's Fig. 10.
    The axis runs from 0 to 100 so that a drop of two points looks like two points."""
    from segtool.io.figures import pyplot, save_png

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
    ax.set_ylim(0, 100)
    ax.set_title(f"Noise robustness on {dataset}" + (f" (n = {images} images)" if images else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    save_png(fig, path, dpi=110)
    return path


def format_percent(value: float) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"
