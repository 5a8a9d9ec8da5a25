"""The training settings (a recipe's `train` section), checked without torch: a bad recipe or a
command-line override is refused before the training stack loads."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import from_known_keys


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
    num_workers: int | str = 0          # DataLoader worker processes per process, or "auto" (see auto_num_workers)
    deterministic: bool = False
    peak_flops: float | None = None     # the GPU's peak FLOP/s for MFU, if not in throughput.PEAK_BF16_FLOPS
    init_from: str | None = None        # a shipped model's name or a checkpoint whose weights start a fresh run

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
        if self.num_workers != "auto":
            whole = isinstance(self.num_workers, (int, float)) and not isinstance(self.num_workers, bool) \
                and float(self.num_workers).is_integer()
            if whole and 0 <= self.num_workers <= 256:
                self.num_workers = int(self.num_workers)
            else:
                problems.append(f"num_workers must be auto or a whole number in 0..256, got {self.num_workers!r}")
        if self.peak_flops is not None and not 0 < self.peak_flops < 1e21:
            problems.append(f"peak_flops must be a FLOP/s figure > 0 (e.g. 989e12) or null, got {self.peak_flops}")
        if self.init_from is not None and not (isinstance(self.init_from, str) and self.init_from):
            problems.append(f"init_from must be a model name or checkpoint path, got {self.init_from!r}")
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
