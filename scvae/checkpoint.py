"""Model checkpoints: weights in safetensors, architecture in JSON, nothing that executes code.

A model checkpoint is a directory holding `model.safetensors` and `config.json` (the config is
also stored in the safetensors metadata, so a lone `.safetensors` file loads too). Legacy
`.pt`/`.pth` files are read with `torch.load(weights_only=True)`, which refuses pickled code.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from .config import SCVAEConfig
from .fileio import atomic_write_bytes, atomic_write_text
from .model import SCVAE
from .vsc import VSC, VSCConfig

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "scvae-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the reason."""


# Backbones a checkpoint can hold: model_type -> (config class, model class). The type is stored in
# the weights' metadata, so a second backbone plugs in with one `register_model_type` call and no
# new branches here; checkpoints without the field are SC-VAEs (every checkpoint written before it).
MODEL_TYPES: dict[str, tuple[type, type]] = {"scvae": (SCVAEConfig, SCVAE), "vsc": (VSCConfig, VSC)}
DEFAULT_MODEL_TYPE = "scvae"


def register_model_type(name: str, config_cls: type, model_cls: type) -> None:
    """Make checkpoints of another backbone loadable: `config_cls.from_dict(dict)` builds its config,
    `model_cls(config)` the module, and `model_cls.model_type` names it when saving."""
    MODEL_TYPES[name] = (config_cls, model_cls)


def config_class(model_type: str) -> type:
    """The config class of a registered backbone (ValueError naming the known ones otherwise)."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model type {model_type!r} is not known here (known: {', '.join(MODEL_TYPES)})")
    return MODEL_TYPES[model_type][0]


def build_model(config):
    """A fresh module of the backbone whose config class `config` is an instance of (exactly)."""
    for config_cls, model_cls in MODEL_TYPES.values():
        if type(config) is config_cls:
            return model_cls(config)
    raise ValueError(f"no registered model type has the config class {type(config).__name__}")


def model_type_of(model) -> str:
    return getattr(type(model), "model_type", DEFAULT_MODEL_TYPE)


def save_model(model: SCVAE, directory: str | os.PathLike, extra_metadata: dict[str, str] | None = None) -> Path:
    """Write `directory/model.safetensors` and `directory/config.json`, each atomically."""
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config_json = json.dumps(model.config.to_dict(), indent=2, sort_keys=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "model_type": model_type_of(model), "config": config_json, **(extra_metadata or {})}
    atomic_write_bytes(directory / WEIGHTS_FILE, save(state, metadata=metadata))
    atomic_write_text(directory / CONFIG_FILE, config_json + "\n")
    return directory


def _config_from_json(text: str, source: Path, model_type: str = DEFAULT_MODEL_TYPE):
    try:
        config_cls = config_class(model_type)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    try:
        return config_cls.from_dict(json.loads(text))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: invalid model config ({exc})") from None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        tensors = load(data)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a valid safetensors file, truncated or corrupt ({exc})") from None
    # Metadata lives in the JSON header: 8-byte little-endian length, then the header.
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + header_len])
    return tensors, header.get("__metadata__", {}) or {}


def _unpickler_reason(exc: Exception) -> str:
    """The safe unpickler's own reason ("Unsupported global: GLOBAL posix.system ..."), not torch's
    advice to retry with weights_only=False."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    _, marker, rest = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if marker else text).splitlines() if line.strip()]
    return (lines[0].split(". Please")[0] if lines else "unsupported content")[:160]


def safe_torch_load(path: Path, what: str, map_location="cpu"):
    """`torch.load(weights_only=True)`: plain tensors and containers only, never pickled code.
    `what` names the file's role in the messages ("weights file", "training state")."""
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about unusual pickle protocols before refusing them
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused: not a plain {what}; unpickling it could run code "
                              f"({_unpickler_reason(exc)})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable {what}, truncated or corrupt "
                              f"({str(exc).splitlines()[0][:160]})") from None


def _read_torch_file(path: Path) -> tuple[dict[str, torch.Tensor], SCVAEConfig | None]:
    obj = safe_torch_load(path, "weights file")
    if isinstance(obj, dict) and "state_dict" in obj:
        config = None
        if isinstance(obj.get("config"), dict):
            try:
                config = SCVAEConfig.from_dict(obj["config"])
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{path}: invalid model config ({exc})") from None
        return obj["state_dict"], config
    if isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, None
    raise CheckpointError(f"{path}: expected a state dict of tensors")


def resolve_checkpoint_files(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """(weights file, config file or None) for a checkpoint directory or file."""
    path = Path(path)
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            raise CheckpointError(f"{path}: no {WEIGHTS_FILE} in this directory")
        config = path / CONFIG_FILE
        return weights, config if config.is_file() else None
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or directory")
    sibling = path.with_name(CONFIG_FILE)
    return path, sibling if sibling.is_file() else None


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> SCVAE:
    """Build an SCVAE from a checkpoint directory, a .safetensors file or a .pt/.pth file."""
    weights, config_file = resolve_checkpoint_files(path)
    config = None
    model_type = DEFAULT_MODEL_TYPE
    if weights.suffix == ".safetensors":
        state, metadata = _read_safetensors(weights)
        model_type = metadata.get("model_type", DEFAULT_MODEL_TYPE)
        if "config" in metadata:
            config = _config_from_json(metadata["config"], weights, model_type)
    else:
        state, config = _read_torch_file(weights)
    if config is None and config_file is not None:
        try:
            text = config_file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise CheckpointError(f"{config_file}: not a text file (a model config is UTF-8 JSON)") from None
        config = _config_from_json(text, config_file, model_type)
    if config is None:
        raise CheckpointError(f"{weights}: no model config found (neither in the file nor a {CONFIG_FILE} beside it)")
    model = MODEL_TYPES[model_type][1](config)
    missing, unexpected = _compare_keys(model, state)
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {len(missing)} tensors (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(f"{weights}: weights do not match the config: " + ", ".join(detail))
    expected = model.state_dict()
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{weights}: weights do not match the config: {key} has shape "
                                  f"{tuple(tensor.shape)}, the config needs {tuple(expected[key].shape)}")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{weights}: tensor {key} holds NaN or inf values")
    model.load_state_dict(state)
    return model.to(map_location).eval()


def _compare_keys(model: SCVAE, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    expected = set(model.state_dict())
    given = set(state)
    return sorted(expected - given), sorted(given - expected)
