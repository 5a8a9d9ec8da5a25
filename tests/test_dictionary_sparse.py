import math

import pytest
import torch

import scvae
from scvae.dictionary import lipschitz_constant, overcomplete_dct
from scvae.sparse import fista, hoyer_sparsity, ista, lasso_energy, soft_threshold


@pytest.mark.parametrize("n,k", [(256, 512), (64, 256), (16, 20), (9, 9)])
def test_dct_shape_and_unit_norm(n, k):
    d = overcomplete_dct(n, k)
    assert d.shape == (n, k)
    assert torch.allclose(d.norm(dim=0), torch.ones(k), atol=1e-5)


def test_dct_official_spectral_norm():
    # The official n=256, K=512 dictionary is overcomplete and far from orthogonal.
    assert lipschitz_constant(overcomplete_dct(256, 512)) == pytest.approx(7.4, abs=0.05)


@pytest.mark.parametrize("n,k", [(64, 256), (256, 512)])
def test_lipschitz_is_largest_eigenvalue(n, k):
    d = overcomplete_dct(n, k).double()
    top = torch.linalg.eigvalsh(d.T @ d).max().item()
    assert lipschitz_constant(d) == pytest.approx(top, rel=1e-6)


def test_dct_rejects_non_square_n():
    with pytest.raises(ValueError, match="perfect square"):
        overcomplete_dct(50, 64)


def test_exact_reconstruction_from_sparse_code():
    d = overcomplete_dct(64, 256)
    z = torch.zeros(256)
    z[[3, 40, 199]] = torch.tensor([1.5, -0.7, 2.0])
    x = d @ z
    assert torch.allclose(z @ d.T, x, atol=1e-6)
    # and a solver with a tiny penalty recovers a signal of that code almost exactly
    z_hat = fista(x[None], d, alpha=1e-4, steps=3000)[0]
    assert torch.allclose(z_hat @ d.T, x, atol=1e-2)


def test_soft_threshold():
    v = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.0])
    assert torch.equal(soft_threshold(v, 0.5), torch.tensor([-1.5, 0.0, 0.0, 0.0, 0.5]))


def test_soft_threshold_matches_its_definition_in_value_and_gradient():
    # sign(v) * max(|v| - theta, 0), with a threshold per atom as LISTA learns them.
    g = torch.Generator().manual_seed(0)
    v = torch.randn(64, 16, generator=g, requires_grad=True)
    theta = (torch.rand(16, generator=g) * 0.8).requires_grad_()
    reference = torch.sign(v) * torch.relu(v.abs() - theta)
    fast = soft_threshold(v, theta)
    assert torch.equal(fast, reference)
    upstream = torch.randn(64, 16, generator=g)
    for got, want in zip(torch.autograd.grad(fast, (v, theta), upstream),
                         torch.autograd.grad(reference, (v, theta), upstream)):
        assert torch.allclose(got, want, atol=1e-5)


def test_fista_beats_ista_at_equal_steps():
    g = torch.Generator().manual_seed(1)
    d = overcomplete_dct(64, 256)
    x = torch.randn(32, 64, generator=g)
    for steps in (10, 30):
        e_ista = lasso_energy(x, d, ista(x, d, 0.1, steps), 0.1).mean()
        e_fista = lasso_energy(x, d, fista(x, d, 0.1, steps), 0.1).mean()
        assert e_fista < e_ista


def test_ista_converges_and_is_sparse():
    g = torch.Generator().manual_seed(2)
    d = overcomplete_dct(64, 256)
    x = torch.randn(16, 64, generator=g)
    z = ista(x, d, 0.5, 500)
    assert (z == 0).float().mean() > 0.5
    assert hoyer_sparsity(z).mean() > 0.5


def test_hoyer_extremes():
    k = 100
    one_hot = torch.zeros(k)
    one_hot[7] = 3.0
    assert hoyer_sparsity(one_hot).item() == pytest.approx(1.0)
    assert hoyer_sparsity(torch.ones(k)).item() == pytest.approx(0.0, abs=1e-6)
