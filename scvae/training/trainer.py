"""The training loop: one code path for 1 CPU, 1 GPU and N GPUs / N nodes under torchrun.

The loop is step-based and deterministic given the seed: the batch at step t is a function
of (seed, t) alone (a fresh permutation per epoch, each sample's augmentation seeded by
(seed, epoch, index)), so a resumed run sees exactly the batches an uninterrupted run would.

Datasets are anything with `len()` and `dataset[(index, sample_seed, resolution)]` returning
an image tensor [3, resolution, resolution] in [-1, 1]; `segtool.training` builds them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import torch
from torch.utils.data import DataLoader

from ..checkpoint import CheckpointError, build_model
from ..config import SCVAEConfig, from_known_keys
from ..fileio import atomic_write_text
from ..model import SCVAE
from ..sparse import active_fraction
from .checkpoints import CheckpointManager
from .config import TrainConfig  # noqa: F401 (re-exported: scvae.training.trainer.TrainConfig)
from .distributed import DistEnv, all_reduce_mean, barrier, setup, teardown
from .metrics import evaluate_reconstruction


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN/inf; nothing was written for that step."""


class TrainingInterrupted(RuntimeError):
    """Stopped by SIGINT/SIGTERM after saving a checkpoint."""

    def __init__(self, step: int, checkpoint: Path | None):
        super().__init__(f"interrupted at step {step}")
        self.step = step
        self.checkpoint = checkpoint


class ImageDataset(Protocol):
    def __len__(self) -> int: ...
    def __getitem__(self, key: tuple[int, int, int]) -> torch.Tensor: ...


def sample_seed(seed: int, epoch: int, index: int) -> int:
    # A 63-bit mix (splitmix64 constants) so neighbouring (epoch, index) pairs get unrelated streams.
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 31
    return x & (2**63 - 1)


class StepBatchSampler:
    """Yields, for steps start..total-1, this rank's share of the global batch at that step."""

    def __init__(self, num_items: int, batch_size: int, env: DistEnv, seed: int, start_step: int, total_steps: int,
                 resolution_at: Callable[[int], int]):
        self.global_batch = batch_size * env.world_size
        if num_items < self.global_batch:
            raise ValueError(f"the training set has {num_items} images, fewer than one global batch "
                             f"({batch_size} x {env.world_size} processes)")
        self.num_items, self.batch_size, self.env = num_items, batch_size, env
        self.seed, self.start_step, self.total_steps = seed, start_step, total_steps
        self.steps_per_epoch = num_items // self.global_batch
        self.resolution_at = resolution_at

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def __iter__(self):
        generator = torch.Generator()
        perm_epoch, perm = -1, None
        for step in range(self.start_step, self.total_steps):
            epoch, within = divmod(step, self.steps_per_epoch)
            if epoch != perm_epoch:
                generator.manual_seed(self.seed * 1_000_003 + epoch)
                perm, perm_epoch = torch.randperm(self.num_items, generator=generator), epoch
            chunk = perm[within * self.global_batch:(within + 1) * self.global_batch]
            mine = chunk[self.env.rank::self.env.world_size].tolist()
            res = self.resolution_at(step)
            yield [(i, sample_seed(self.seed, epoch, i), res) for i in mine]


class TrainerHooks:
    """Rank-0 callbacks; override what you need (the CLI draws a progress bar with them)."""

    def on_start(self, info: dict) -> None: ...
    def on_step(self, step: int, metrics: dict) -> None: ...
    def on_checkpoint(self, step: int, path: Path, val_metrics: dict) -> None: ...
    def on_end(self, step: int) -> None: ...


def lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.schedule == "constant":
            return 1.0
        span = max(1, total_steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def _worker_ignores_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the main process.

    `timeout`, Slurm and Kubernetes signal the whole process group. A worker that dies of the
    signal makes the loader raise in the main process before its own handler can save a
    checkpoint; ignoring it here lets the main process stop at the step boundary and shut the
    workers down itself (they also exit when the main process dies).
    """
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def auto_num_workers() -> int:
    """DataLoader workers for `num_workers: auto`: this process's share of the cores it may run on,
    less one for the training loop itself, at most 8 (more rarely help one GPU), at least 0.

    The cores are those of the CPU affinity mask where the OS has one (a container or a Slurm
    job often gets fewer than os.cpu_count() says); under torchrun the processes of one node
    (LOCAL_WORLD_SIZE) share them.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    per_process = cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(0, min(8, per_process - 1))


def resolve_num_workers(setting: int | str) -> int:
    return auto_num_workers() if setting == "auto" else int(setting)


def training_loader(dataset: ImageDataset, sampler: StepBatchSampler, num_workers: int, seed: int,
                    pin_memory: bool) -> DataLoader:
    """The DataLoader of a training run (also what bench/data_loading.py measures).

    It draws a base seed for its workers from its own generator, not from the global RNG: a
    draw there would shift the dropout stream of a resumed run by one.
    """
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
                      persistent_workers=False, generator=torch.Generator().manual_seed(seed),
                      worker_init_fn=_worker_ignores_stop_signals if num_workers else None)


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop checkpoints and stops at the next step boundary.
    A second signal restores the default behaviour, so a stuck run can still be killed."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        self.requested = True
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)

    def __enter__(self) -> "_StopFlag":
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)


class _SpeedMeter:
    """MFU and peak memory for the log rows of a CUDA run; nothing on a CPU, where no peak is known.

    FLOPs per image are counted once per training resolution, before the clock starts."""

    def __init__(self, model: SCVAE, cfg: TrainConfig, env: DistEnv, start_step: int, total_steps: int):
        from .throughput import table_peak_flops, training_flops_per_image

        self.env = env
        self.flops: dict[int, int] = {}
        self.peak, source, name = None, None, None
        if env.device.type == "cuda":
            name = torch.cuda.get_device_name(env.device)
            self.peak, source = (cfg.peak_flops, "train.peak_flops") if cfg.peak_flops else (table_peak_flops(name), name)
            if self.peak is not None:
                # The resolutions this run will train at: the one it starts at and any it switches to.
                resolutions = {cfg.resolution_at(start_step)} | {cfg.resolution_at(s) for s, _ in cfg.resolution_schedule
                                                                 if start_step <= s < total_steps}
                self.flops = {r: training_flops_per_image(model, r) for r in sorted(resolutions)}
            torch.cuda.reset_peak_memory_stats(env.device)
        start_res = cfg.resolution_at(start_step)
        self.info = {"flops_per_image": self.flops.get(start_res), "peak_flops": self.peak,
                     "peak_flops_source": source, "device_name": name}

    def measures(self, resolution: int, images_per_s: float) -> dict:
        from .throughput import utilisation

        if self.env.device.type != "cuda":
            return {}
        row = {"gpu_memory_gib": torch.cuda.max_memory_allocated(self.env.device) / 2 ** 30}
        if resolution in self.flops:
            row["mfu"] = utilisation(self.flops[resolution], images_per_s, self.peak, self.env.world_size)
        return row


class Trainer:
    """Trains an SC-VAE into `out_dir` (checkpoints/, log.jsonl). Construct on every rank."""

    def __init__(self, model_config: SCVAEConfig, train_config: TrainConfig, dataset: ImageDataset, out_dir: str | Path,
                 val_images: torch.Tensor | None = None, hooks: TrainerHooks | None = None, device: str = "auto",
                 run_info: dict | None = None):
        self.model_config = model_config
        self.config = train_config
        self.dataset = dataset
        self.out_dir = Path(out_dir)
        self.val_images = val_images
        self.hooks = hooks or TrainerHooks()
        self.device_request = device
        self.run_info = run_info or {}
        self.checkpoints = CheckpointManager(self.out_dir / "checkpoints", keep=train_config.keep_checkpoints)
        self.log_path = self.out_dir / "log.jsonl"

    # -- set-up ---------------------------------------------------------------------------
    def total_steps(self, env: DistEnv) -> int:
        if self.config.max_steps is not None:
            return self.config.max_steps
        per_epoch = len(self.dataset) // (self.config.batch_size * env.world_size)
        return max(1, int(self.config.epochs * per_epoch))

    def _trim_log(self, step: int) -> None:
        """Drop log rows past the starting step: those steps are about to be redone."""
        if not self.log_path.is_file():
            return
        kept = []
        for line in self.log_path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a row torn by a kill mid-write
        atomic_write_text(self.log_path, "".join(k + "\n" for k in kept))

    def _log(self, row: dict) -> None:
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    # -- the loop -------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> Path | None:
        env = setup(self.device_request)
        deterministic_before = torch.are_deterministic_algorithms_enabled()
        try:
            return self._fit(env, resume)
        finally:
            # deterministic=True is a process-wide switch: give the caller back its own setting.
            torch.use_deterministic_algorithms(deterministic_before)
            teardown(env)

    def _fit(self, env: DistEnv, resume: bool) -> Path | None:
        cfg = self.config
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True)
        torch.manual_seed(cfg.seed)
        model = build_model(self.model_config).to(env.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        total = self.total_steps(env)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, cfg.schedule_steps or total))
        step, elapsed_before = 0, 0.0
        resumed_from = self.checkpoints.latest() if resume else None
        if resumed_from is not None:
            loaded, state = CheckpointManager.load(resumed_from, map_location=env.device)
            try:
                model.load_state_dict(loaded.state_dict())
            except RuntimeError:
                changed = [f"{f.name} {getattr(loaded.config, f.name)!r} -> {getattr(self.model_config, f.name)!r}"
                           for f in dataclasses.fields(loaded.config)
                           if getattr(loaded.config, f.name) != getattr(self.model_config, f.name)]
                raise CheckpointError(f"{resumed_from}: cannot resume, the model config changed since this checkpoint "
                                      f"({', '.join(changed)}); resume with the run's own recipe, or train into a new "
                                      f"directory") from None
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            step = int(state["step"])
            elapsed_before = float(state.get("elapsed_s", 0.0))
            torch.set_rng_state(state["rng_cpu"].cpu())
            if env.device.type == "cuda" and "rng_cuda" in state:
                torch.cuda.set_rng_state(state["rng_cuda"].cpu(), env.device)
        elif cfg.init_from:
            self._start_from_weights(model, cfg.init_from, env)
        if env.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            # Rows past the starting step (all of them for a fresh start) belong to an attempt
            # whose weights are gone; keeping them would duplicate steps in the log.
            self._trim_log(step)
        barrier(env)

        train_model: torch.nn.Module = model
        if env.is_distributed:
            from torch.nn.parallel import DistributedDataParallel

            train_model = DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        sampler = StepBatchSampler(len(self.dataset), cfg.batch_size, env, cfg.seed, step, total, cfg.resolution_at)
        num_workers = resolve_num_workers(cfg.num_workers)
        use_amp = cfg.amp and env.device.type == "cuda"
        speed = _SpeedMeter(model, cfg, env, step, total) if env.is_main else None

        if env.is_main:
            self.hooks.on_start({"start_step": step, "total_steps": total, "world_size": env.world_size,
                                 "device": str(env.device), "resumed_from": str(resumed_from) if resumed_from else None,
                                 "parameters": model.num_parameters(), "steps_per_epoch": sampler.steps_per_epoch,
                                 "amp": use_amp, "num_workers": num_workers, **speed.info})
        last_saved: Path | None = resumed_from
        last_saved_step = step
        first_step = step + 1
        t_start = time.perf_counter()
        window_t, window_images = time.perf_counter(), 0
        model.train()
        with _StopFlag() as stop, warnings.catch_warnings():
            # DDP compares gradient strides literally; a 1x1 conv's weight gradient can differ from
            # the bucket only in the strides of its size-1 dimensions (same memory layout), and
            # DDP then warns on every rank of every CPU run.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            # torch checks the worker count when the loader is built and again when it is iterated,
            # from two places in its code, so the same advice would print twice.
            warnings.filterwarnings("once", message="This DataLoader will create")
            loader = training_loader(self.dataset, sampler, num_workers, cfg.seed, pin_memory=env.device.type == "cuda")
            for batch in loader:
                x = batch.to(env.device, non_blocking=True)
                if hasattr(model, "begin_step"):
                    model.begin_step(step)   # a backbone's schedule by step, e.g. VSC's slab warm-up
                with torch.autocast(device_type=env.device.type, dtype=torch.bfloat16, enabled=use_amp):
                    out = train_model(x)
                parts = model.loss(x, out)
                optimizer.zero_grad(set_to_none=True)
                parts["loss"].backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip or float("inf"))
                # One all-reduce carries the loss terms (whichever the backbone's loss names), the
                # gradient norm, a non-finite flag and the stop request.
                terms = sorted(parts)
                flags = torch.stack([*(parts[k].detach().float() for k in terms), grad_norm.detach().float(),
                                     torch.tensor(0.0 if torch.isfinite(parts["loss"]) and torch.isfinite(grad_norm) else 1.0,
                                                  device=env.device),
                                     torch.tensor(1.0 if stop.requested else 0.0, device=env.device)]).float()
                flags = all_reduce_mean(flags, env)
                reduced = dict(zip(terms, flags.tolist()))
                grad_norm_mean, not_finite, stop_requested = flags[len(terms):].tolist()
                if not_finite > 0:
                    raise TrainingDiverged(
                        f"loss or gradients became NaN/inf at step {step + 1}; the last good checkpoint is "
                        f"{last_saved or 'none (nothing saved yet)'}. Lower the learning rate or set gradient clipping, then resume from that checkpoint.")
                optimizer.step()
                scheduler.step()
                step += 1
                window_images += x.shape[0] * env.world_size

                # The first step is logged too: a slow model must not leave the user without a
                # number for log_every steps (its rate includes the loader's start-up).
                if env.is_main and (step % cfg.log_every == 0 or step == total or step == first_step):
                    now = time.perf_counter()
                    images_per_s = window_images / max(1e-9, now - window_t)
                    metrics = {"step": step, "epoch": step / sampler.steps_per_epoch, **reduced,
                               "grad_norm": grad_norm_mean, "lr": scheduler.get_last_lr()[0],
                               "images_per_s": images_per_s, "resolution": x.shape[-1],
                               "active": active_fraction(out.codes),
                               "elapsed_s": elapsed_before + now - t_start, **speed.measures(x.shape[-1], images_per_s)}
                    self._log(metrics)
                    self.hooks.on_step(step, metrics)
                    window_t, window_images = now, 0
                elif env.is_main:
                    self.hooks.on_step(step, {"step": step, "loss": reduced["loss"]})

                stopping = stop_requested > 0
                if step % cfg.ckpt_every == 0 or step == total or stopping:
                    elapsed = elapsed_before + time.perf_counter() - t_start
                    last_saved = self._checkpoint(env, model, optimizer, scheduler, step, elapsed)
                    last_saved_step = step
                if stopping:
                    raise TrainingInterrupted(step, last_saved)
        if env.is_main:
            self.hooks.on_end(step)
        return last_saved if last_saved_step == step else None

    def _start_from_weights(self, model: SCVAE, source: str, env: DistEnv) -> None:
        """A fresh run that starts from another model's weights (fine-tuning); the optimiser, the
        schedule and the step start afresh. A resumed run takes its weights from its own checkpoint."""
        from scvae.registry import load

        loaded = load(source, device=env.device)
        if loaded.config != self.model_config:
            changed = [f"{f.name} {getattr(loaded.config, f.name)!r} vs {getattr(self.model_config, f.name, None)!r}"
                       for f in dataclasses.fields(loaded.config)
                       if getattr(loaded.config, f.name) != getattr(self.model_config, f.name, None)]
            if type(loaded.config) is not type(self.model_config):  # another backbone (an SC-VAE vs a VSC)
                changed = [f"{type(loaded.config).__name__} vs {type(self.model_config).__name__}"]
            raise CheckpointError(f"train.init_from {source}: its model differs from the recipe's "
                                  f"({', '.join(changed)}); start from a model of the same config")
        model.load_state_dict(loaded.state_dict())

    def _checkpoint(self, env: DistEnv, model: SCVAE, optimizer, scheduler, step: int, elapsed: float) -> Path | None:
        path = None
        if env.is_main:
            state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "rng_cpu": torch.get_rng_state(), "elapsed_s": elapsed,
                     **({"rng_cuda": torch.cuda.get_rng_state(env.device)} if env.device.type == "cuda" else {}),
                     "train_config": json.dumps(dataclasses.asdict(self.config)),
                     "run_info": json.dumps(self.run_info)}
            path = self.checkpoints.save(step, model, state)
            val = evaluate_reconstruction(model, self.val_images, self.config.val_batch_size) \
                if self.val_images is not None and len(self.val_images) else {}
            self._log({"step": step, "kind": "checkpoint", "path": str(path), "elapsed_s": elapsed, **val})
            self.hooks.on_checkpoint(step, path, val)
        barrier(env)
        return path if env.is_main else self.checkpoints.root / f"step-{step:08d}"


def train(model_config: SCVAEConfig, train_config: TrainConfig, dataset: ImageDataset, out_dir: str | Path,
          val_images: torch.Tensor | None = None, resume: bool = False, hooks: TrainerHooks | None = None,
          device: str = "auto") -> Path | None:
    """Functional entry point; returns the final checkpoint directory (on rank 0)."""
    return Trainer(model_config, train_config, dataset, out_dir, val_images, hooks, device).fit(resume=resume)


__all__: Sequence[str] = ["TrainConfig", "Trainer", "TrainerHooks", "TrainingDiverged", "TrainingInterrupted",
                          "StepBatchSampler", "train"]
