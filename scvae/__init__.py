"""SC-VAE: a sparse-coding VAE with a learned ISTA layer (the model library).

    import scvae
    model = scvae.load()                      # the shipped default model
    codes = model.sparse_codes(images)        # [B, h, w, K]
    model = scvae.SCVAE(scvae.preset("paper-d3"))
"""

from .checkpoint import CheckpointError, load_model, save_model
from .config import PRESETS, SCVAEConfig, preset
from .dictionary import lipschitz_constant, overcomplete_dct
from .lista import LISTA
from .model import SCVAE, SCVAEOutput
from .registry import DEFAULT_MODEL, available_models, load
from .sparse import fista, hoyer_sparsity, ista, lasso_energy, soft_threshold

__version__ = "0.1.0"

__all__ = [
    "CheckpointError", "DEFAULT_MODEL", "LISTA", "PRESETS", "SCVAE", "SCVAEConfig", "SCVAEOutput",
    "available_models", "fista", "hoyer_sparsity", "ista", "lasso_energy", "lipschitz_constant", "load",
    "load_model", "overcomplete_dct", "preset", "save_model", "soft_threshold",
]
