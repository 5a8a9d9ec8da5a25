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


@dataclass
class TrainConfig:
    """Optimisation settings. batch_size is per process: the global batch is batch_size x world size."""

    batch_size: int = 16
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "constant"          # constant | cosine (after warmup)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1           # cosine floor, as a fraction of lr
    max_steps: int | None = None        # if None: epochs x steps per epoch
    schedule_steps: int | None = None   # length of the LR schedule if not max_steps (stop early, same curve)
    epochs: float = 10.0
    grad_clip: float | None = 1.0       # max global grad norm; None disables clipping
    resolution: int = 256
    resolution_schedule: list[list[int]] = field(default_factory=list)  # [[from_step, resolution], ...]
    log_every: int = 10
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    val_batch_size: int = 16
    seed: int = 0
    amp: bool = True                    # bf16 autocast on CUDA (ignored on CPU)
    num_workers: int = 0
    deterministic: bool = False

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)
        self.resolution_schedule = [[int(s), int(r)] for s, r in self.resolution_schedule]
        problems = []
        if not 1 <= self.batch_size <= 65536:
            problems.append(f"batch_size must be in 1..65536, got {self.batch_size}")
        if not 0 < self.lr <= 1.0:
            problems.append(f"lr must be > 0 and <= 1, got {self.lr}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            problems.append(f"betas must be two numbers in [0, 1), got {list(self.betas)}")
        if not 0.0 <= self.weight_decay <= 1.0:
            problems.append(f"weight_decay must be in [0, 1], got {self.weight_decay}")
        if self.schedule not in ("constant", "cosine"):
            problems.append(f"schedule must be constant or cosine, got {self.schedule!r}")
        if self.warmup_steps < 0:
            problems.append(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            problems.append(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps must be >= 1, got {self.max_steps}")
        if self.schedule_steps is not None and self.schedule_steps < 1:
            problems.append(f"schedule_steps must be >= 1, got {self.schedule_steps}")
        if not self.epochs > 0:
            problems.append(f"epochs must be > 0, got {self.epochs}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            problems.append(f"grad_clip must be > 0 (or null for no clipping), got {self.grad_clip}")
        if not 8 <= self.resolution <= 4096:
            problems.append(f"resolution must be in 8..4096 pixels, got {self.resolution}")
        if any(r < 8 or r > 4096 or s < 0 for s, r in self.resolution_schedule):
            problems.append("resolution_schedule entries must be [from_step >= 0, resolution in 8..4096]")
        if self.ckpt_every < 1 or self.log_every < 1:
            problems.append("ckpt_every and log_every must be >= 1")
        if self.keep_checkpoints < 1:
            problems.append(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        if not 1 <= self.val_batch_size <= 65536:
            problems.append(f"val_batch_size must be in 1..65536, got {self.val_batch_size}")
        if not 0 <= self.seed < 2 ** 63:
            problems.append(f"seed must be a whole number in [0, 2^63), got {self.seed}")
        if not 0 <= self.num_workers <= 256:
            problems.append(f"num_workers must be in 0..256, got {self.num_workers}")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def check_model(self, downsample_factor: int) -> None:
        """Every resolution trained at must be a multiple of the model's 2^d (its code grid must be whole)."""
        bad = sorted({r for r in (self.resolution, *(r for _, r in self.resolution_schedule)) if r % downsample_factor})
        if bad:
            raise ValueError(f"resolution {bad[0]} is not a multiple of 2^d = {downsample_factor}; the model "
                             "downsamples by 2^d")

    def resolution_at(self, step: int) -> int:
        res = self.resolution
        for start, r in sorted(self.resolution_schedule):
            if step >= start:
                res = r
        return res

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return from_known_keys(cls, data, "train config")


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
        # The loader draws a base seed for its workers from its own generator, not from the
        # global RNG: a draw there would shift the dropout stream of a resumed run by one.
        loader = DataLoader(self.dataset, batch_sampler=sampler, num_workers=cfg.num_workers,
                            pin_memory=env.device.type == "cuda", persistent_workers=False,
                            generator=torch.Generator().manual_seed(cfg.seed),
                            worker_init_fn=_worker_ignores_stop_signals if cfg.num_workers else None)
        use_amp = cfg.amp and env.device.type == "cuda"

        if env.is_main:
            self.hooks.on_start({"start_step": step, "total_steps": total, "world_size": env.world_size,
                                 "device": str(env.device), "resumed_from": str(resumed_from) if resumed_from else None,
                                 "parameters": model.num_parameters(), "steps_per_epoch": sampler.steps_per_epoch,
                                 "amp": use_amp})
        last_saved: Path | None = resumed_from
        last_saved_step = step
        t_start = time.perf_counter()
        window_t, window_images = time.perf_counter(), 0
        model.train()
        with _StopFlag() as stop, warnings.catch_warnings():
            # DDP compares gradient strides literally; a 1x1 conv's weight gradient can differ from
            # the bucket only in the strides of its size-1 dimensions (same memory layout), and
            # DDP then warns on every rank of every CPU run.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
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

                if env.is_main and (step % cfg.log_every == 0 or step == total):
                    now = time.perf_counter()
                    metrics = {"step": step, "epoch": step / sampler.steps_per_epoch, **reduced,
                               "grad_norm": grad_norm_mean, "lr": scheduler.get_last_lr()[0],
                               "images_per_s": window_images / max(1e-9, now - window_t), "resolution": x.shape[-1],
                               "active": active_fraction(out.codes),
                               "elapsed_s": elapsed_before + now - t_start}
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
