"""Variational Sparse Coding (Tonolini, Jensen and Murray-Smith, ECML-PKDD 2020) on SC-VAE's
encoder and decoder: a spike-and-slab VAE whose latent is the same h x w x K grid of codes.

Per position and atom the recognition head gives the slab mean mu, its log-variance and the
spike's log-odds (gamma = sigmoid of it, the probability the atom is used):

    q(z | x) = gamma N(z; mu, sigma^2) + (1 - gamma) delta(z)
    p(z)     = alpha N(z; 0, 1)        + (1 - alpha) delta(z)      (alpha: `spike_prior`)

The KL between the two is closed-form (the paper's eq. 6, per latent):

    gamma (log(gamma / alpha) + (mu^2 + sigma^2 - 1 - log sigma^2) / 2) + (1 - gamma) log((1 - gamma) / (1 - alpha))

Training samples z = T(u) (mu + sigma eps) with u ~ U(0, 1), eps ~ N(0, 1) and the paper's
relaxed spike T(u) = sigmoid(c (u - 1 + gamma)): a step function (an exact Bernoulli(gamma)
draw) as the temperature parameter c grows, differentiable in gamma for finite c.

Against posterior collapse the paper warms the slab up: for the first steps the slab mean and
log-variance are scaled by lambda, which rises linearly from 0 to 1 between `warmup_start`
and `warmup_end`, so early codes can carry information only through which atoms are on (the KL
is of the unscaled posterior throughout, as in the authors' code).

The deterministic codes segmentation uses are the slab means of the atoms more likely on
than off: z = mu [gamma > 1/2]. A linear map (the analogue of SC-VAE's dictionary D) takes
the K-dim code back to the decoder's n channels.

The paper's full model also learns a prior from pseudo-inputs; this one keeps the fixed
spike-and-slab prior above, which is what the closed-form KL is written for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import SCVAEConfig, VSCConfig  # noqa: F401 (VSCConfig re-exported)
from .model import check_images, encoder_and_decoder, parameter_counts


def spike_slab_kl(mu: torch.Tensor, logvar: torch.Tensor, spike_logit: torch.Tensor, alpha: float) -> torch.Tensor:
    """KL(q || p) per latent entry, q = gamma N(mu, sigma^2) + (1 - gamma) delta_0, p = alpha N(0, 1) + (1 - alpha) delta_0."""
    gamma = torch.sigmoid(spike_logit)
    # log gamma and log(1 - gamma) from the logits: no log(0) for a saturated spike.
    log_gamma, log_not_gamma = F.logsigmoid(spike_logit), F.logsigmoid(-spike_logit)
    slab = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    return (gamma * (log_gamma - math.log(alpha) + slab)
            + (1.0 - gamma) * (log_not_gamma - math.log1p(-alpha)))


def relaxed_spike(spike_logit: torch.Tensor, temperature: float) -> torch.Tensor:
    """The paper's relaxed Bernoulli(gamma): sigmoid(c (u - 1 + gamma)), u ~ U(0, 1)."""
    u = torch.rand_like(spike_logit)
    return torch.sigmoid(temperature * (u - 1.0 + torch.sigmoid(spike_logit)))


@dataclass
class VSCOutput:
    reconstruction: torch.Tensor  # [B, 3, H, W]: from the sample while training, from `codes` in eval mode
    codes: torch.Tensor           # mu [gamma > 1/2], [B, h, w, K]: the deterministic sparse codes
    mu: torch.Tensor              # slab means, [B, h, w, K]
    logvar: torch.Tensor          # slab log-variances
    spike_logit: torch.Tensor     # log-odds of gamma


class VSC(nn.Module):
    """Spike-and-slab VAE with SC-VAE's encoder and decoder (see the module docstring).

    Images in [-1, 1], [B, 3, H, W] with H and W divisible by 2^d; `sparse_codes` gives
    [B, H/2^d, W/2^d, K] like `scvae.SCVAE.sparse_codes`, so segmentation takes either.
    """

    model_type = "vsc"

    def __init__(self, config: VSCConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.encoder, decoder = encoder_and_decoder(config)
        # The recognition head: per position, (mu, log sigma^2, spike log-odds) for each of the K atoms.
        self.head = nn.Conv2d(config.code_dim, 3 * config.num_atoms, 1)
        self.dictionary = nn.Conv2d(config.num_atoms, config.code_dim, 1, bias=False)
        self.decoder = decoder
        self.warmup = 1.0   # lambda of the slab warm-up; set by `begin_step` while training

    def begin_step(self, step: int) -> None:
        """The trainer's per-step hook: the slab warm-up's lambda for training step `step`."""
        start, end = self.config.warmup_start, self.config.warmup_end
        self.warmup = 1.0 if end <= start else min(1.0, max(0.0, (step - start) / (end - start)))

    def posterior(self, x: torch.Tensor, bfloat16_levels: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mu, log sigma^2, spike log-odds), each channels-last [B, h, w, K]; bfloat16_levels as
        the encoder's forward takes it."""
        self._check_input(x)
        params = self.head(self.encoder(x, bfloat16_levels)).permute(0, 2, 3, 1)
        mu, logvar, spike_logit = params.float().chunk(3, dim=-1)
        # Bounded log-variance: exp() of an unbounded head output is the usual source of NaNs.
        return mu, logvar.clamp(-10.0, 10.0), spike_logit

    @staticmethod
    def hard_codes(mu: torch.Tensor, spike_logit: torch.Tensor) -> torch.Tensor:
        return mu * (spike_logit > 0).to(mu.dtype)

    def sparse_codes(self, x: torch.Tensor, bfloat16_levels: int = 0) -> torch.Tensor:
        """The h x w x K codes segmentation uses: [B, h, w, K]."""
        mu, _, spike_logit = self.posterior(x, bfloat16_levels)
        return self.hard_codes(mu, spike_logit)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes [B, h, w, K] -> image [B, 3, H, W]."""
        return self.decoder(self.dictionary(codes.permute(0, 3, 1, 2)))

    def forward(self, x: torch.Tensor) -> VSCOutput:
        mu, logvar, spike_logit = self.posterior(x)
        codes = self.hard_codes(mu, spike_logit)
        if self.training:
            lam = self.warmup
            slab = lam * mu + torch.exp(0.5 * lam * logvar) * torch.randn_like(mu)
            latent = relaxed_spike(spike_logit, self.config.temperature) * slab
        else:
            latent = codes
        return VSCOutput(self.decode(latent), codes, mu, logvar, spike_logit)

    def loss(self, x: torch.Tensor, out: VSCOutput | None = None) -> dict[str, torch.Tensor]:
        """Per-pixel MSE + beta x the spike-and-slab KL averaged over latent entries."""
        out = self(x) if out is None else out
        recon = F.mse_loss(out.reconstruction.float(), x.float())
        kl = spike_slab_kl(out.mu, out.logvar, out.spike_logit, self.config.spike_prior).mean()
        return {"loss": recon + self.config.beta * kl, "recon": recon, "kl": kl}

    def _check_input(self, x: torch.Tensor) -> None:
        check_images(x, self.config)

    def num_parameters(self) -> dict[str, int]:
        return parameter_counts(encoder=self.encoder, head=nn.ModuleList([self.head, self.dictionary]),
                                decoder=self.decoder)
