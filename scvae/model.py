"""The SC-VAE: encoder -> LISTA sparse codes over a DCT dictionary -> decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import SCVAEConfig
from .dictionary import overcomplete_dct
from .lista import LISTA
from .modules import Decoder, Encoder


@dataclass
class SCVAEOutput:
    reconstruction: torch.Tensor  # [B, 3, H, W]
    features: torch.Tensor        # E(x), [B, h, w, n]
    codes: torch.Tensor           # Z, [B, h, w, K]
    code_reconstruction: torch.Tensor  # D Z, [B, h, w, n]


class SCVAE(nn.Module):
    """The sparse-coding VAE: encoder, LISTA sparse coding over a DCT dictionary, decoder.

    Parameters
    ----------
    config : SCVAEConfig
        The architecture (scvae.config); `scvae.preset(name)` gives the paper's and the CPU ones.

    Images are in [-1, 1], shape [B, 3, H, W] with H and W divisible by 2^d; `sparse_codes`
    gives [B, H/2^d, W/2^d, K].
    """

    model_type = "scvae"   # names the backbone in checkpoints (scvae.checkpoint.MODEL_TYPES)

    def __init__(self, config: SCVAEConfig):
        super().__init__()
        config.validate()
        self.config = config
        # Registered in this order (encoder, LISTA, decoder): an optimiser's saved state follows it.
        self.encoder, decoder = encoder_and_decoder(config)
        self.lista = LISTA(overcomplete_dct(config.code_dim, config.num_atoms), steps=config.lista_steps,
                           alpha=config.alpha, mode=config.lista_mode)
        self.decoder = decoder

    def encode(self, x: torch.Tensor, bfloat16_levels: int = 0) -> torch.Tensor:
        """E(x) as a channels-last grid [B, h, w, n]; bfloat16_levels as Encoder.forward takes it."""
        self._check_input(x)
        return self.encoder(x, bfloat16_levels).permute(0, 2, 3, 1)

    def sparse_codes(self, x: torch.Tensor, bfloat16_levels: int = 0) -> torch.Tensor:
        """The h x w x K codes segmentation uses: [B, h, w, K]. bfloat16_levels: the encoder's first
        N resolution levels in bfloat16 (Encoder.forward); LISTA always runs in float32."""
        return self._sparse_code(self.encode(x, bfloat16_levels))[0]

    def _sparse_code(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Thresholding is sensitive to rounding: LISTA always runs in float32, even under bf16 autocast.
        with torch.autocast(device_type=features.device.type, enabled=False):
            codes = self.lista(features.float())
            return codes, self.lista.reconstruct(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, h, w, K] -> image [B, 3, H, W]."""
        return self.decoder(self.lista.reconstruct(codes.float()).permute(0, 3, 1, 2))

    def forward(self, x: torch.Tensor) -> SCVAEOutput:
        features = self.encode(x)
        codes, code_rec = self._sparse_code(features)
        recon = self.decoder(code_rec.permute(0, 3, 1, 2))
        return SCVAEOutput(recon, features, codes, code_rec)

    def loss(self, x: torch.Tensor, out: SCVAEOutput | None = None) -> dict[str, torch.Tensor]:
        """Eq. (5) of the paper with every term a per-element mean, so that weights do not
        depend on image size, code grid or widths:

            ||G(DZ) - x||^2 / (3HW) + w_lat (1/hw) sum_ij ||E_ij - D Z_ij||^2 / n
                                     + alpha (1/hw) sum_ij ||Z_ij||_1 / K

        The official variant has no explicit L1 term (its sparsity comes from the threshold).
        """
        out = self(x) if out is None else out
        recon = F.mse_loss(out.reconstruction.float(), x.float())
        latent = F.mse_loss(out.code_reconstruction.float(), out.features.float())
        if self.config.lista_mode == "paper":
            l1 = out.codes.float().abs().mean()
        else:
            l1 = torch.zeros((), device=x.device)
        total = recon + self.config.latent_weight * latent + self.config.alpha * l1
        return {"loss": total, "recon": recon, "latent": latent, "l1": l1}

    def _check_input(self, x: torch.Tensor) -> None:
        check_images(x, self.config)

    def num_parameters(self) -> dict[str, int]:
        return parameter_counts(encoder=self.encoder, lista=self.lista, decoder=self.decoder)


def encoder_and_decoder(config: SCVAEConfig) -> tuple[Encoder, Decoder]:
    """The VQGAN-layout encoder (image -> n channels) and decoder (n channels -> image) of a config."""
    mult = config.multipliers
    encoder = Encoder(config.in_channels, config.base_channels, mult, config.num_res_blocks, config.code_dim,
                      config.attn_levels, config.dropout)
    decoder = Decoder(config.in_channels, config.base_channels, mult, config.num_res_blocks, config.code_dim,
                      config.attn_levels, config.dropout)
    return encoder, decoder


def check_images(x: torch.Tensor, config: SCVAEConfig) -> None:
    """A ValueError unless x is a batch [B, C, H, W] the model's config accepts."""
    if x.ndim != 4 or x.shape[1] != config.in_channels:
        raise ValueError(f"expected images [B, {config.in_channels}, H, W], got {tuple(x.shape)}")
    f = config.downsample_factor
    if x.shape[-1] % f or x.shape[-2] % f:
        raise ValueError(f"image size {tuple(x.shape[-2:])} must be divisible by 2^d = {f}")


def parameter_counts(**parts: nn.Module) -> dict[str, int]:
    """Parameters per named part, and their total."""
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in parts.items()}
    counts["total"] = sum(counts.values())
    return counts
