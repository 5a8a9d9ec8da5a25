"""Dictionaries for sparse coding: the overcomplete 2-D DCT and its Lipschitz constant."""

from __future__ import annotations

import math

import torch


def overcomplete_dct_1d(n: int, m: int) -> torch.Tensor:
    """An n x m overcomplete 1-D DCT: m cosines sampled at n points, zero-mean but the DC
    atom, each column unit-norm (the construction of the official SC-VAE code)."""
    if n < 1 or m < 1:
        raise ValueError(f"overcomplete_dct_1d needs n, m >= 1, got n={n}, m={m}")
    t = torch.arange(n, dtype=torch.float64)
    cols = []
    for k in range(m):
        v = torch.cos(t * k * math.pi / m)
        if k > 0:
            v = v - v.mean()
        norm = v.norm()
        # With n == 1 every non-DC atom is zero after centring; keep it zero rather than NaN.
        cols.append(v / norm if norm > 0 else v)
    return torch.stack(cols, dim=1)


def overcomplete_dct(n: int = 256, num_atoms: int = 512) -> torch.Tensor:
    """The n x K overcomplete 2-D DCT dictionary: the Kronecker product of two
    sqrt(n) x ceil(sqrt(K)) 1-D DCTs, rows in row-major patch order, columns unit-norm,
    the first K columns kept. With n=256, K=512 this is 16x23 (x) 16x23, cut to 512.

    It is not orthogonal: its squared spectral norm (the Lipschitz constant of D^T D)
    is about 7.4 for n=256, K=512.
    """
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"the 2-D DCT needs n to be a perfect square (a side x side patch), got n={n}")
    if num_atoms < 1:
        raise ValueError(f"num_atoms must be >= 1, got {num_atoms}")
    m = math.ceil(math.sqrt(num_atoms))
    d1 = overcomplete_dct_1d(side, m)
    d2 = torch.kron(d1, d1)  # (side*side) x (m*m); rows index (row-of-patch, col-of-patch)
    d2 = d2 / d2.norm(dim=0, keepdim=True).clamp_min(1e-12)
    return d2[:, :num_atoms].to(torch.float32).contiguous()


def lipschitz_constant(dictionary: torch.Tensor) -> float:
    """Largest eigenvalue of D^T D, i.e. ||D||_2^2: the step size bound of ISTA."""
    d = dictionary.detach().to(torch.float64)
    return float(torch.linalg.matrix_norm(d, ord=2) ** 2)
