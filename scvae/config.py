"""Model configuration: one dataclass with sane defaults, and named presets."""

from __future__ import annotations

import dataclasses
import math
import types
from dataclasses import dataclass

# Here, not in lista.py, so that checking a config (a recipe, a command-line override) never imports torch.
LISTA_MODES = ("paper", "official")


def _number(key: str, value, kind: type, optional: bool):
    """`value` as `kind` (int or float) when it is one written another way, else a ValueError.

    `1e3` for a whole-number field is 1000; `4` for a float field is 4.0. Text, booleans,
    NaN and infinities are refused with the key named: they would fail far from here.
    """
    if value is None:
        if optional:
            return None
        raise ValueError(f"{key} must be a number, got null")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{key} must be {what}, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{key} must be a finite number, got {value!r}")
    if kind is int:
        if float(value) != int(value):
            raise ValueError(f"{key} must be a whole number, got {value!r}")
        return int(value)
    return float(value)


def coerce_numbers(cls, data: dict) -> dict:
    """Values of a mapping read from YAML, made (or checked to be) the type each field declares:
    numbers written another way are converted, text and true/false must be what the field says."""
    import typing

    hints = typing.get_type_hints(cls)
    out = dict(data)
    for key, value in data.items():
        hint = hints.get(key)
        is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        args = set(typing.get_args(hint)) if is_union else {hint}
        optional = type(None) in args
        numeric = args - {type(None)}
        if numeric == {int}:
            out[key] = _number(key, value, int, optional)
        elif numeric == {float}:
            out[key] = _number(key, value, float, optional)
        elif numeric == {bool} and not isinstance(value, bool):
            raise ValueError(f"{key} must be true or false, got {value!r}")
        elif numeric == {str} and not isinstance(value, str) and not (optional and value is None):
            raise ValueError(f"{key} must be text, got {value!r}")
    return out


# Declared limits: far beyond any sensible model, far below what would exhaust a machine before
# a check could run. Checked by validate(), so a recipe, an override or a checkpoint's config.json
# with 10^9 atoms is refused in one line instead of allocating.
LIMITS = (("d", 0, 10), ("base_channels", 1, 4096), ("max_channels", 1, 8192), ("num_res_blocks", 1, 16),
          ("in_channels", 1, 64), ("code_dim", 1, 16384), ("num_atoms", 1, 16384), ("lista_steps", 1, 1000),
          ("alpha", 0.0, 1e6))
MAX_PARAMETERS_ENV = "SCVAE_MAX_PARAMETERS"
DEFAULT_MAX_PARAMETERS = 2_000_000_000


def max_parameters() -> int:
    import os

    try:
        return int(float(os.environ.get(MAX_PARAMETERS_ENV, DEFAULT_MAX_PARAMETERS)))
    except ValueError:
        return DEFAULT_MAX_PARAMETERS


def key_list(keys) -> str:
    """Keys for a one-line message: plain names as they are, anything else (newlines, spaces) quoted."""
    return ", ".join(str(k) if str(k).isidentifier() else repr(k) for k in sorted(keys, key=str))


def from_known_keys(cls, data: dict, what: str):
    """Build dataclass `cls` from a mapping, refusing keys it does not have (a typo in a recipe
    or config file must not be silently ignored) and numbers that are not numbers."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a mapping of keys to values, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {what} keys: {key_list(unknown)}")
    return cls(**coerce_numbers(cls, data))


@dataclass
class SCVAEConfig:
    """Everything that defines an SC-VAE's architecture and loss.

    d:              downsampling steps; an H x W input gives H/2^d x W/2^d codes.
    base_channels:  C', the width of the first encoder level.
    max_channels:   C'', the width of the last level and of the attention block.
    channel_mult:   per-level width multipliers (d + 1 of them); by default the official
                    layout (1, ..., 1, r/2, r/2, r) with r = C''/C'.
    code_dim:       n, channels of E(x) and rows of the dictionary (a perfect square: 2-D DCT).
    num_atoms:      K, dictionary atoms = length of each sparse code.
    lista_steps:    s, unrolled LISTA iterations.
    lista_mode:     "paper" (learned W_e, S, per-atom thresholds, fixed D) or "official"
                    (trained D and scalar c); see scvae.lista.
    alpha:          L1 weight of the loss and the LISTA threshold's initial scale.
    latent_weight:  weight of the latent term ||E - DZ||^2 of eq. (5).
    """

    d: int = 3
    base_channels: int = 128
    max_channels: int = 512
    channel_mult: tuple[int, ...] | None = None
    num_res_blocks: int = 1
    attn_levels: tuple[int, ...] = ()
    in_channels: int = 3
    code_dim: int = 256
    num_atoms: int = 512
    lista_steps: int = 16
    lista_mode: str = "paper"
    alpha: float = 0.1
    latent_weight: float = 1.0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.channel_mult is not None:
            self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attn_levels = tuple(int(a) for a in self.attn_levels)
        self.validate()

    def validate(self) -> None:
        problems = []
        for name, low, high in LIMITS:
            value = getattr(self, name)
            if not low <= value <= high:
                problems.append(f"{name} must be in {low}..{high}, got {value}")
        if problems:  # the checks below assume sizes in range
            raise ValueError("invalid SC-VAE config: " + "; ".join(problems))
        if not (math.isfinite(self.latent_weight) and self.latent_weight >= 0):
            problems.append(f"latent_weight must be a finite number >= 0, got {self.latent_weight}")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.channel_mult is not None and len(self.channel_mult) != self.d + 1:
            problems.append(f"channel_mult needs d + 1 = {self.d + 1} entries, got {len(self.channel_mult)}")
        elif any(m < 1 or m > 64 for m in self.multipliers):
            problems.append(f"channel_mult entries must be in 1..64, got {list(self.multipliers)}")
        elif self.estimated_parameters() > max_parameters():
            problems.append(f"about {self.estimated_parameters():,} parameters is above the limit of {max_parameters():,} "
                            f"(set {MAX_PARAMETERS_ENV} to allow more)")
        if self.base_channels < 1 or self.max_channels < self.base_channels:
            problems.append(f"need 1 <= base_channels <= max_channels, got {self.base_channels}, {self.max_channels}")
        if math.isqrt(self.code_dim) ** 2 != self.code_dim:
            problems.append(f"code_dim (n) must be a perfect square for the 2-D DCT, got {self.code_dim}")
        if self.num_atoms < 1:
            problems.append(f"num_atoms must be >= 1, got {self.num_atoms}")
        if self.lista_steps < 1:
            problems.append(f"lista_steps must be >= 1, got {self.lista_steps}")
        if self.lista_mode not in LISTA_MODES:
            problems.append(f"lista_mode must be one of {', '.join(LISTA_MODES)}, got {self.lista_mode!r}")
        if self.alpha < 0:
            problems.append(f"alpha must be >= 0, got {self.alpha}")
        if self.num_res_blocks < 1:
            problems.append(f"num_res_blocks must be >= 1, got {self.num_res_blocks}")
        if problems:
            raise ValueError("invalid SC-VAE config: " + "; ".join(problems))

    def estimated_parameters(self) -> int:
        """An upper estimate of the parameter count from the config alone, before anything is allocated
        (a config read from a file may declare sizes no machine holds)."""
        widths = [self.base_channels * m for m in self.multipliers]
        squares = sum(c * c for c in widths)
        middle = 2 * 2 * 9 * widths[-1] ** 2 + 4 * widths[-1] ** 2          # two ResBlocks and attention
        encoder = (2 * self.num_res_blocks + 1) * 9 * squares + middle       # ResBlocks + downsampling per level
        decoder = (2 * (self.num_res_blocks + 1) + 1) * 9 * squares + middle  # one ResBlock more per level
        ends = 9 * (self.in_channels + self.code_dim) * (widths[0] + widths[-1])
        lista = self.code_dim * self.num_atoms * 2 + self.num_atoms ** 2 + self.num_atoms
        return int(encoder + decoder + ends + lista)

    def describe(self) -> str:
        """The architecture in one line (a dry run of training prints it)."""
        return (f"d={self.d}, C'={self.base_channels} -> C''={self.max_channels} (widths "
                f"{[self.base_channels * m for m in self.multipliers]}), n={self.code_dim}, K={self.num_atoms}, "
                f"s={self.lista_steps}, LISTA {self.lista_mode}, alpha={self.alpha}")

    @property
    def multipliers(self) -> tuple[int, ...]:
        if self.channel_mult is not None:
            return self.channel_mult
        r = max(1, self.max_channels // self.base_channels)
        if self.d == 0:
            return (r,)
        if self.d == 1:
            return (1, r)
        half = max(1, r // 2)
        return (1,) * (self.d - 2) + (half, half, r)

    @property
    def downsample_factor(self) -> int:
        return 2 ** self.d

    def code_grid(self, height: int, width: int) -> tuple[int, int]:
        f = self.downsample_factor
        return height // f, width // f

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["channel_mult"] = list(self.channel_mult) if self.channel_mult is not None else None
        out["attn_levels"] = list(self.attn_levels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "SCVAEConfig":
        return from_known_keys(cls, data, "SC-VAE config")

    def replace(self, **changes) -> "SCVAEConfig":
        return dataclasses.replace(self, **changes)


def _paper(d: int) -> SCVAEConfig:
    return SCVAEConfig(d=d, base_channels=128, max_channels=512, num_res_blocks=1, code_dim=256, num_atoms=512,
                       lista_steps=16)


PRESETS: dict[str, SCVAEConfig] = {
    # The paper's settings (C' = 128, C'' = 512, n = 256, K = 512, s = 16, one ResBlock per level as
    # in its Table 4: 43M parameters at d = 3) at four depths.
    "paper-d3": _paper(3),
    "paper-d4": _paper(4),
    "paper-d6": _paper(6),
    "paper-d8": _paper(8),
    # CPU-sized: trains at a few images/s on two cores, 32x32 codes from a 256x256 input.
    "small-d3": SCVAEConfig(d=3, base_channels=32, max_channels=128, num_res_blocks=1, code_dim=64, num_atoms=256,
                            lista_steps=16),
}


def preset(name: str) -> SCVAEConfig:
    try:
        return dataclasses.replace(PRESETS[name])
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}") from None


# The VSC backbone's settings live here, beside SC-VAE's, so that a recipe naming `type: vsc` is
# checked without torch; the model is scvae.vsc.VSC.
@dataclass
class VSCConfig(SCVAEConfig):
    """SC-VAE's architecture fields (d, widths, n = code_dim, K = num_atoms; the LISTA fields are
    unused) and the VSC prior, relaxation and warm-up.

    spike_prior:   alpha, the prior probability that an atom is on.
    temperature:   c of the relaxed spike sigmoid(c (u - 1 + gamma)); larger is sharper.
    beta:          weight of the KL (mean per latent entry) against the per-pixel MSE.
    warmup_start, warmup_end: the slab warm-up's steps (lambda 0 -> 1); equal values: no warm-up.
    """

    spike_prior: float = 0.2
    temperature: float = 50.0
    beta: float = 0.01
    warmup_start: int = 0
    warmup_end: int = 0

    def validate(self) -> None:
        super().validate()
        problems = []
        if not 0.0 < self.spike_prior < 1.0:
            problems.append(f"spike_prior (alpha) must be in (0, 1), got {self.spike_prior}")
        if not (math.isfinite(self.temperature) and 0.0 < self.temperature <= 1e4):
            problems.append(f"temperature must be in (0, 10000], got {self.temperature}")
        if not (math.isfinite(self.beta) and 0.0 <= self.beta <= 1e6):
            problems.append(f"beta must be in [0, 1e6], got {self.beta}")
        if not 0 <= self.warmup_start <= self.warmup_end:
            problems.append(f"need 0 <= warmup_start <= warmup_end, got {self.warmup_start}, {self.warmup_end}")
        if problems:
            raise ValueError("invalid VSC config: " + "; ".join(problems))

    def describe(self) -> str:
        return (f"VSC d={self.d}, C'={self.base_channels} -> C''={self.max_channels}, n={self.code_dim}, "
                f"K={self.num_atoms}, spike prior alpha={self.spike_prior}, c={self.temperature}, beta={self.beta}, "
                f"slab warm-up steps {self.warmup_start}..{self.warmup_end}")

    @classmethod
    def from_dict(cls, data: dict) -> "VSCConfig":
        from .config import from_known_keys

        return from_known_keys(cls, data, "VSC config")


# The config class of each backbone by name, torch-free (scvae.checkpoint.MODEL_TYPES pairs them with
# their modules).
CONFIG_TYPES: dict[str, type] = {"scvae": SCVAEConfig, "vsc": VSCConfig}
