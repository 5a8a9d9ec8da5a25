"""The `data` section of a training recipe, checked without torch: a bad recipe or `--set` value is
refused before the training stack loads."""

from __future__ import annotations

from dataclasses import dataclass, field


class TrainingDataError(ValueError):
    """The recipe's data section cannot be turned into a training set."""


@dataclass
class DataConfig:
    source: str = "imagefolder"        # imagefolder | hub
    root: str | None = None            # imagefolder: the folder (recursively searched)
    extra_roots: list[str] = field(default_factory=list)  # imagefolder: more folders, trained on, never held out
    name: str | None = None            # hub: dataset name, e.g. "ILSVRC/imagenet-1k"
    config_name: str | None = None     # hub: dataset config
    split: str = "train"
    val_split: str | None = None       # hub: a split to validate on (else: holdout)
    image_column: str = "image"
    holdout: int = 50                  # last N items (sorted file names) kept for validation
    val_limit: int = 50
    val_resolution: int = 128
    crop_scale: list[float] = field(default_factory=lambda: [0.2, 1.0])
    crop_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])
    hflip: bool = True
    cache: bool = False                # decode every image once into memory (small sets)
    cache_short_side: int = 288

    def __post_init__(self) -> None:
        problems = []
        if self.source not in ("imagefolder", "hub"):
            problems.append(f"source must be imagefolder or hub, got {self.source!r}")
        if not 0 <= self.holdout <= 1_000_000:
            problems.append(f"holdout must be >= 0 images, got {self.holdout}")
        if not 0 <= self.val_limit <= 1_000_000:
            problems.append(f"val_limit must be >= 0 images, got {self.val_limit}")
        if not 8 <= self.val_resolution <= 4096:
            problems.append(f"val_resolution must be in 8..4096, got {self.val_resolution}")
        if not 8 <= self.cache_short_side <= 8192:
            problems.append(f"cache_short_side must be in 8..8192, got {self.cache_short_side}")
        if not isinstance(self.extra_roots, (list, tuple)) or not all(isinstance(r, str) and r for r in self.extra_roots):
            problems.append(f"extra_roots must be a list of folders, got {self.extra_roots!r}")
        scale, ratio = list(self.crop_scale), list(self.crop_ratio)
        if len(scale) != 2 or not all(isinstance(v, (int, float)) and 0 < v <= 1 for v in scale) or scale[0] > scale[1]:
            problems.append(f"crop_scale must be [low, high] with 0 < low <= high <= 1, got {self.crop_scale}")
        if len(ratio) != 2 or not all(isinstance(v, (int, float)) and 0 < v < 100 for v in ratio) or ratio[0] > ratio[1]:
            problems.append(f"crop_ratio must be [low, high] with 0 < low <= high, got {self.crop_ratio}")
        if problems:
            raise TrainingDataError("invalid data config: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, data: dict) -> "DataConfig":
        from scvae.config import from_known_keys

        try:
            return from_known_keys(cls, data, "data config")
        except ValueError as exc:
            raise TrainingDataError(str(exc)) from None
