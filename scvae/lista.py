"""Learned ISTA (Gregor & LeCun 2010) with the two parameterisations SC-VAE is known by.

`paper`    (SC-VAE paper, section 3.2): W_e = D^T / L, S = I - D^T D / L and per-atom
           thresholds theta = alpha / L are learnable and initialised from D; D itself is a
           fixed buffer; S is shared over the s unrolled steps.
`official` (sotiraslab/SC-VAE code): D is trained; W_e and S are derived from D and a
           learned scalar c (initialised to L = ||D||_2^2) on every call; one scalar
           threshold alpha / c.

Both compute Z(t+1) = h_theta(W_e X + S Z(t)) from Z(0) = 0, for s steps.
"""

from __future__ import annotations

import torch
from torch import nn

from .dictionary import lipschitz_constant
from .sparse import soft_threshold
from .config import LISTA_MODES



class LISTA(nn.Module):
    def __init__(self, dictionary: torch.Tensor, steps: int = 16, alpha: float = 0.1, mode: str = "paper"):
        super().__init__()
        if mode not in LISTA_MODES:
            raise ValueError(f"unknown LISTA mode {mode!r}; choose one of {', '.join(LISTA_MODES)}")
        if steps < 1:
            raise ValueError(f"LISTA needs at least one step, got {steps}")
        self.mode = mode
        self.steps = steps
        self.alpha = alpha
        n, k = dictionary.shape
        self.code_dim, self.num_atoms = n, k
        big_l = lipschitz_constant(dictionary)
        if mode == "paper":
            self.register_buffer("dictionary", dictionary.clone())
            self.weight_e = nn.Parameter(dictionary.T.clone() / big_l)               # K x n
            self.weight_s = nn.Parameter(torch.eye(k) - dictionary.T @ dictionary / big_l)  # K x K
            self.theta = nn.Parameter(torch.full((k,), alpha / big_l))
        else:
            self.dictionary = nn.Parameter(dictionary.clone())
            self.c = nn.Parameter(torch.tensor(big_l, dtype=torch.float32))

    def operators(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_e [K, n], S [K, K], theta [K] or scalar) as used by forward."""
        if self.mode == "paper":
            return self.weight_e, self.weight_s, self.theta.clamp_min(0)
        d = self.dictionary
        # c must stay above zero or the step 1/c flips sign; clamp keeps a bad update harmless.
        c = self.c.clamp_min(1e-3)
        eye = torch.eye(self.num_atoms, device=d.device, dtype=d.dtype)
        return d.T / c, eye - d.T @ d / c, (self.alpha / c).clamp_min(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., n] -> sparse codes [..., K]."""
        w_e, s, theta = self.operators()
        # On a [cells, n] matrix each step is one fused multiply-add (addmm) and the threshold.
        b = x.reshape(-1, x.shape[-1]) @ w_e.T
        z = soft_threshold(b, theta)
        for _ in range(self.steps - 1):
            z = soft_threshold(torch.addmm(b, z, s.T), theta)
        return z.reshape(*x.shape[:-1], z.shape[-1])

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        """D Z: codes [..., K] back to the encoder space [..., n]."""
        return z @ self.dictionary.T
