"""SC-VAE: a sparse-coding VAE with a learned ISTA layer (the model library).

    import scvae
    model = scvae.load()                      # the shipped default model
    codes = model.sparse_codes(images)        # [B, h, w, K]
    model = scvae.SCVAE(scvae.preset("paper-d3"))

The names below load their module on first use, so `import scvae` (and a command line that only
checks its options) does not pay for torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "CheckpointError": "checkpoint", "load_model": "checkpoint", "save_model": "checkpoint",
    "PRESETS": "config", "SCVAEConfig": "config", "preset": "config",
    "lipschitz_constant": "dictionary", "overcomplete_dct": "dictionary",
    "LISTA": "lista",
    "SCVAE": "model", "SCVAEOutput": "model",
    "DEFAULT_MODEL": "registry", "available_models": "registry", "load": "registry",
    "VSC": "vsc", "VSCConfig": "config", "build_model": "checkpoint",
    "fista": "sparse", "hoyer_sparsity": "sparse", "ista": "sparse", "lasso_energy": "sparse",
    "soft_threshold": "sparse",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value   # later lookups skip this function
        return value
    raise AttributeError(f"module 'scvae' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
