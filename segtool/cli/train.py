"""`segtool train`: a recipe -> datasets -> scvae.training.trainer, with a progress bar, a log and a loss plot."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from segtool.training.recipe import Recipe, load_recipe

# soft_wrap: redirected output is read as a log; rich would otherwise break lines at 80 columns.
console = Console(stderr=True, soft_wrap=True)


def describe_model(recipe: Recipe) -> dict:
    import scvae

    model = scvae.build_model(recipe.model)
    counts = model.num_parameters()
    h, w = recipe.model.code_grid(256, 256)
    th, tw = recipe.model.code_grid(recipe.train.resolution, recipe.train.resolution)
    return {"parameters": counts, "codes_at_256": [h, w, recipe.model.num_atoms],
            "codes_at_train_resolution": [th, tw, recipe.model.num_atoms],
            "channels": [recipe.model.base_channels * m for m in recipe.model.multipliers]}


def print_dry_run(recipe: Recipe) -> None:
    from rich.table import Table

    info = describe_model(recipe)
    cfg = recipe.model
    table = Table(title=f"recipe {recipe.name}: {recipe.source}", show_header=False)
    table.add_row("model", cfg.describe())
    p = info["parameters"]
    parts = ", ".join(f"{'LISTA' if name == 'lista' else name} {count:,}" for name, count in p.items() if name != "total")
    table.add_row("parameters", f"{p['total']:,} ({parts})")
    table.add_row("codes", f"{'x'.join(map(str, info['codes_at_256']))} for a 256x256 input; "
                  f"{'x'.join(map(str, info['codes_at_train_resolution']))} at the training resolution "
                  f"{recipe.train.resolution}")
    t = recipe.train
    length = f"{t.max_steps} steps" if t.max_steps else f"{t.epochs} epochs"
    table.add_row("training", f"{length}, batch {t.batch_size} per process, lr {t.lr} ({t.schedule}), "
                  f"betas {list(t.betas)}, grad clip {t.grad_clip}")
    workers = t.num_workers
    if workers == "auto":
        from scvae.training.trainer import auto_num_workers

        workers = f"auto ({auto_num_workers()} here)"
    table.add_row("data", f"{recipe.data.source} {recipe.data.root or recipe.data.name or '(--data-root)'}, "
                  f"holdout {recipe.data.holdout}, {workers} loader workers")
    if recipe.data.extra_roots:
        table.add_row("more data", ", ".join(recipe.data.extra_roots) + " (trained on, never held out)")
    if t.init_from:
        table.add_row("starts from", f"the weights of {t.init_from} (a fresh optimiser and schedule)")
    if recipe.meant_for:
        table.add_row("meant for", f"{recipe.meant_for.upper()}s")
    table.add_row("out", recipe.out)
    Console().print(table)


def describe_utilisation(info: dict) -> str:
    """One line on what the MFU figures will be measured against, or why there are none."""
    if info["peak_flops"] is not None:
        return (f"MFU: {info['flops_per_image'] / 1e9:,.1f} GFLOP per image (forward + backward) against "
                f"{info['peak_flops'] / 1e12:,.0f} TFLOP/s per GPU ({info['peak_flops_source']})")
    if info["peak_flops_source"] is not None:
        return f"MFU: not measured, the peak FLOP/s of {info['peak_flops_source']} is unknown: set train.peak_flops"
    return f"MFU: not measured on {info['device']}, only on a GPU; images/s only"


class RichHooks:
    """Progress bar on a terminal; a plain line every few logs when output is redirected."""

    def __init__(self, out_dir: Path):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.out_dir = out_dir
        self.interactive = console.is_terminal
        self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[stats]}"),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not self.interactive)
        self.task = None
        self.last_print = 0.0

    def on_start(self, info: dict) -> None:
        p = info["parameters"]["total"]
        resumed = f", resumed from {info['resumed_from']}" if info["resumed_from"] else ""
        named = f" ({info['device_name']})" if info.get("device_name") else ""
        console.print(f"training {p:,} parameters on {info['device']}{named} x {info['world_size']} "
                      f"(bf16 autocast: {info['amp']}, {info['num_workers']} loader workers), "
                      f"steps {info['start_step']} -> {info['total_steps']}{resumed}")
        console.print(describe_utilisation(info))
        self.progress.start()
        self.task = self.progress.add_task("train", total=info["total_steps"], completed=info["start_step"], stats="")

    def on_step(self, step: int, metrics: dict) -> None:
        if "images_per_s" in metrics:
            mfu = f" | MFU {100 * metrics['mfu']:.1f}%" if "mfu" in metrics else ""
            terms = " ".join(f"{k} {metrics[k]:.4f}" for k in ("loss", "recon", "latent", "kl") if k in metrics)
            stats = f"{terms} | {metrics['images_per_s']:.1f} img/s{mfu} | {metrics['resolution']}px"
            self.progress.update(self.task, completed=step, stats=stats)
            if not self.interactive and time.monotonic() - self.last_print > 30:
                console.print(f"step {step}: {stats}")
                self.last_print = time.monotonic()
        else:
            self.progress.update(self.task, completed=step)

    def on_checkpoint(self, step: int, path: Path, val: dict) -> None:
        from segtool.training.plots import plot_training_log

        extra = f" | val PSNR {val['val_psnr']:.2f} dB SSIM {val['val_ssim']:.3f}" if val else ""
        self.progress.console.print(f"checkpoint {path}{extra}")
        plot_training_log(self.out_dir / "log.jsonl", self.out_dir / "loss.png")

    def on_end(self, step: int) -> None:
        self.progress.stop()


def refuse_gpu_recipe_on_cpu(recipe: Recipe, device: str) -> None:
    """A recipe sized for GPUs would crawl on a CPU (the paper's 43M model: about 0.09 images/s on
    2 cores) without a word; say so and name what to do instead, before any data is read."""
    if recipe.meant_for != "gpu" or device.startswith("cuda"):
        return  # a cuda device that is not there is refused by scvae.devices, naming --device
    import torch

    if device == "auto" and torch.cuda.is_available():
        return
    from segtool.errors import UsageError
    from segtool.training.recipe import recipes_meant_for

    why = "--device cpu was asked for" if device == "cpu" else "no GPU is visible"
    *others, last = recipes_meant_for("cpu") or ["small-cpu"]
    choices = f"{', '.join(others)} or {last}" if others else last
    raise UsageError(f"recipe {recipe.name} is meant for GPUs and {why}; on a CPU train {choices}, "
                     f"look at this one with --dry-run, or pass --allow-cpu to train it here anyway")


def run_training(recipe_ref: str, overrides: list[str], data_root: str | None, out: str | None, max_steps: int | None,
                 resume: bool, dry_run: bool, device: str, allow_cpu: bool = False) -> Path | None:
    if data_root is not None:
        overrides = [*overrides, f"data.root={json.dumps(str(data_root))}"]
    if max_steps is not None:
        overrides = [*overrides, f"train.max_steps={int(max_steps)}"]
    recipe = load_recipe(recipe_ref, overrides)
    rank = int(os.environ.get("RANK", "0"))
    if dry_run:
        if rank == 0:
            print_dry_run(recipe)
        return None
    if not allow_cpu:
        refuse_gpu_recipe_on_cpu(recipe, device)

    from scvae.training.trainer import Trainer

    from segtool.training.data import AugmentedImages, TrainingDataError, load_image_sets, validation_tensor

    out_dir = Path(out or recipe.out)
    existing = (out_dir / "checkpoints").is_dir() and any((out_dir / "checkpoints").iterdir())
    if existing and not resume:
        raise FileExistsError(f"{out_dir} already holds checkpoints: pass --resume to continue, or --out to start a new run")
    if recipe.train.init_from and not resume:
        from scvae.registry import resolve

        resolve(recipe.train.init_from)  # a name or path that is not there: refused before any data loads
    train_set, val_set = load_image_sets(recipe.data)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if recipe.train.batch_size * world > len(train_set):
        raise TrainingDataError(f"train.batch_size = {recipe.train.batch_size} x {world} process(es) is more than the "
                                f"{len(train_set)} training images; lower train.batch_size or add images")
    val_images = validation_tensor(val_set, recipe.data.val_resolution) if rank == 0 else None
    if rank == 0:
        import yaml

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.resolved, sort_keys=False), encoding="utf-8")
        console.print(f"{len(train_set)} training images, {0 if val_images is None else len(val_images)} held out; "
                      f"writing to {out_dir}")
    hooks = RichHooks(out_dir) if rank == 0 else None
    trainer = Trainer(recipe.model, recipe.train, AugmentedImages(train_set, recipe.data), out_dir,
                      val_images=val_images, hooks=hooks, device=device,
                      run_info={"recipe": recipe.name, "argv": sys.argv[1:]})
    try:
        path = trainer.fit(resume=resume)
    finally:
        if hooks is not None:
            hooks.progress.stop()  # on Ctrl-C or divergence too: a live display hides the cursor until stopped
    # Every rank returns the path; only rank 0 reports it, so torchrun prints it once.
    return path if rank == 0 else None
