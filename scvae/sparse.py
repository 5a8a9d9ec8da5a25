"""Classic sparse coding solvers (the reference LISTA is tested against) and sparsity measures.

All solvers minimise E(Z) = 1/2 ||X - D Z||^2 + alpha ||Z||_1 for a batch of signals X
of shape [..., n] over a dictionary D of shape [n, K]; codes have shape [..., K].
"""

from __future__ import annotations

import torch

from .dictionary import lipschitz_constant


def soft_threshold(v: torch.Tensor, theta: torch.Tensor | float) -> torch.Tensor:
    """h_theta(v) = sign(v) * max(|v| - theta, 0), computed as v - clamp(v, -theta, theta): the same
    values and gradients in two element-wise passes instead of five (LISTA's steps are
    dominated by them on a CPU)."""
    return v - v.clamp(-theta, theta)


def lasso_energy(x: torch.Tensor, dictionary: torch.Tensor, z: torch.Tensor, alpha: float) -> torch.Tensor:
    """E(Z) per signal, shape [...]."""
    residual = x - z @ dictionary.T
    return 0.5 * residual.pow(2).sum(-1) + alpha * z.abs().sum(-1)


def ista(x: torch.Tensor, dictionary: torch.Tensor, alpha: float, steps: int = 100,
         lipschitz: float | None = None) -> torch.Tensor:
    """Iterative shrinkage-thresholding from Z(0) = 0 with step 1/L."""
    big_l = lipschitz if lipschitz is not None else lipschitz_constant(dictionary)
    z = x.new_zeros(*x.shape[:-1], dictionary.shape[1])
    for _ in range(steps):
        grad = (z @ dictionary.T - x) @ dictionary
        z = soft_threshold(z - grad / big_l, alpha / big_l)
    return z


def fista(x: torch.Tensor, dictionary: torch.Tensor, alpha: float, steps: int = 100,
          lipschitz: float | None = None) -> torch.Tensor:
    """FISTA (Beck & Teboulle 2009): ISTA with Nesterov momentum, O(1/t^2) in energy."""
    big_l = lipschitz if lipschitz is not None else lipschitz_constant(dictionary)
    z = x.new_zeros(*x.shape[:-1], dictionary.shape[1])
    y = z
    t = 1.0
    for _ in range(steps):
        grad = (y @ dictionary.T - x) @ dictionary
        z_next = soft_threshold(y - grad / big_l, alpha / big_l)
        t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        y = z_next + ((t - 1.0) / t_next) * (z_next - z)
        z, t = z_next, t_next
    return z


def hoyer_sparsity(z: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Hoyer's measure per code vector, in [0, 1]: 0 for a flat vector, 1 for one non-zero.

    (sqrt(K) - ||z||_1 / ||z||_2) / (sqrt(K) - 1); an all-zero code counts as fully sparse.
    """
    k = z.shape[-1]
    l1 = z.abs().sum(-1)
    l2 = z.pow(2).sum(-1).sqrt()
    ratio = torch.where(l2 > eps, l1 / l2.clamp_min(eps), torch.ones_like(l1))
    return (k ** 0.5 - ratio) / (k ** 0.5 - 1)


def active_fraction(z: torch.Tensor, threshold: float = 0.0) -> float:
    """Fraction of code entries with |z| > threshold (0: exactly non-zero, which soft
    thresholding gives; a small threshold also counts near-zeros of other coders as inactive)."""
    return float((z.abs() > threshold).float().mean())
