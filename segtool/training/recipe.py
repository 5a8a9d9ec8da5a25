"""Training recipes: YAML files with `model`, `data`, `train` and `out` sections.

`segtool train imagenet` resolves the shipped `recipes/imagenet.yaml`; a path works too.
`--set section.key=value` overrides any entry (values parsed as YAML: 4, 1e-4, [64, 128], true).
The `model` section names a preset and overrides its fields: `{preset: paper-d3, d: 4}`; `type`
picks another registered backbone on the same architecture (`{type: vsc, preset: small-d3}`).
`meant_for: gpu | cpu` says which machine the recipe was sized for (the CLI refuses to start a
GPU recipe on a CPU without being told to).
"""

from __future__ import annotations

from segtool.params import key_list

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from segtool.training.dataconfig import DataConfig, TrainingDataError

SECTIONS = ("model", "data", "train", "out", "description", "meant_for")
MACHINES = ("gpu", "cpu")


class RecipeError(ValueError):
    """A recipe that cannot be found, parsed or applied."""


@dataclass
class Recipe:
    name: str
    source: str
    model: object          # scvae.SCVAEConfig, or another backbone's config (scvae.VSCConfig)
    data: DataConfig
    train: object          # scvae.training.trainer.TrainConfig
    out: str
    description: str
    meant_for: str | None  # gpu | cpu | None (any machine)
    resolved: dict         # the recipe after overrides, as written beside the run


def available_recipes() -> list[str]:
    from segtool.resources import shipped_names

    return shipped_names("recipe")


def find_recipe(name_or_path: str) -> tuple[str, str]:
    """(name, YAML text) of a shipped recipe by name or a recipe file by path (segtool.resources)."""
    from segtool.resources import read_resource

    text, source, shipped = read_resource("recipe", name_or_path, RecipeError)
    return (name_or_path if shipped else Path(source).stem), text


def parse_override(text: str) -> tuple[list[str], object]:
    from segtool.yamltext import parse_scalar

    key, sep, value = text.partition("=")
    keys = [k for k in key.strip().split(".") if k]
    if not sep or not keys:
        raise RecipeError(f"--set {text!r}: expected section.key=value, e.g. --set model.d=4")
    if keys[0] not in SECTIONS:
        raise RecipeError(f"--set {text!r}: unknown section {keys[0]!r}; recipes have {', '.join(SECTIONS)}")
    return keys, parse_scalar(value) if value.strip() else None


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    out = copy.deepcopy(raw)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise RecipeError(f"--set {text!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return out


def build_recipe(name: str, source: str, raw: dict) -> Recipe:
    import scvae
    from scvae.training.config import TrainConfig

    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise RecipeError(f"{source}: unknown top-level keys {key_list(unknown)}; expected {', '.join(SECTIONS)}")
    from scvae.config import coerce_numbers

    for section in ("model", "data", "train"):
        if raw.get(section) is not None and not isinstance(raw[section], dict):
            raise RecipeError(f"{source}: {section} must be a mapping of keys to values (e.g. {section}: {{key: value}}), "
                              f"got {raw[section]!r}")
    from scvae.config import CONFIG_TYPES

    def config_class(name: str) -> type:
        if name in CONFIG_TYPES:
            return CONFIG_TYPES[name]  # the shipped backbones: no torch needed to check the recipe
        from scvae.checkpoint import config_class as registered  # a backbone registered at run time

        return registered(name)

    model_raw = dict(raw.get("model") or {})
    preset_name = model_raw.pop("preset", None)
    model_type = model_raw.pop("type", "scvae")
    try:
        config_cls = config_class(str(model_type))
        base = scvae.preset(preset_name) if preset_name else scvae.SCVAEConfig()
        if config_cls is not type(base):
            # Presets are SC-VAE architectures; another backbone's config extends those fields.
            base = config_cls(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)})
        fields = {f.name for f in dataclasses.fields(base)}
        bad = sorted(set(model_raw) - fields)
        if bad:
            raise ValueError(f"unknown model keys {key_list(bad)}")
        if "d" in model_raw and "channel_mult" not in model_raw:
            model_raw["channel_mult"] = None  # re-derive the level widths for the new depth
        model = base.replace(**coerce_numbers(type(base), model_raw))
        train = TrainConfig.from_dict(dict(raw.get("train") or {}))
        train.check_model(model.downsample_factor)
        data = DataConfig.from_dict(dict(raw.get("data") or {}))
    except (TypeError, ValueError, TrainingDataError) as exc:
        raise RecipeError(f"{source}: {exc}") from None
    meant_for = raw.get("meant_for")
    if meant_for is not None and meant_for not in MACHINES:
        raise RecipeError(f"{source}: meant_for must be {' or '.join(MACHINES)} (or absent: any machine), got {meant_for!r}")
    return Recipe(name=name, source=source, model=model, data=data, train=train,
                  out=str(raw.get("out") or f"runs/{name}"), description=str(raw.get("description") or ""),
                  meant_for=meant_for, resolved=raw)


def read_recipe(name_or_path: str) -> tuple[str, dict]:
    """(name, the raw mapping) of a recipe, before overrides and checks."""
    import yaml

    from segtool.yamltext import load_yaml

    name, text = find_recipe(name_or_path)
    try:
        raw = load_yaml(text) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{name_or_path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{name_or_path}: a recipe is a mapping with sections {', '.join(SECTIONS)}")
    return name, raw


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> Recipe:
    name, raw = read_recipe(name_or_path)
    return build_recipe(name, name_or_path, apply_overrides(raw, overrides or []))


def recipes_meant_for(machine: str) -> list[str]:
    """Names of the shipped recipes marked `meant_for: machine`."""
    return [name for name in available_recipes() if read_recipe(name)[1].get("meant_for") == machine]
