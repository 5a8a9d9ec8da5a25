import pytest
import torch

import scvae
from scvae.dictionary import lipschitz_constant, overcomplete_dct
from scvae.lista import LISTA
from scvae.sparse import ista

from conftest import tiny_config


def test_untrained_paper_lista_equals_ista():
    g = torch.Generator().manual_seed(3)
    d = overcomplete_dct(64, 128)
    x = torch.randn(20, 64, generator=g)
    alpha = 0.2
    lista = LISTA(d, steps=300, alpha=alpha, mode="paper")
    with torch.no_grad():
        z_lista = lista(x)
    z_ista = ista(x, d, alpha, steps=300)
    assert torch.allclose(z_lista, z_ista, atol=1e-4)


def test_official_lista_matches_ista_at_init():
    g = torch.Generator().manual_seed(4)
    d = overcomplete_dct(16, 32)
    x = torch.randn(5, 16, generator=g)
    lista = LISTA(d, steps=50, alpha=0.1, mode="official")
    with torch.no_grad():
        assert torch.allclose(lista(x), ista(x, d, 0.1, 50), atol=1e-4)
    assert isinstance(lista.dictionary, torch.nn.Parameter)


def test_paper_mode_keeps_dictionary_fixed():
    lista = LISTA(overcomplete_dct(16, 32), mode="paper")
    names = {n for n, _ in lista.named_parameters()}
    assert names == {"weight_e", "weight_s", "theta"}
    assert "dictionary" in dict(lista.named_buffers())
    assert lista.theta.shape == (32,)


@pytest.mark.parametrize("d,grid", [(3, 32), (4, 16), (6, 4), (8, 1)])
def test_code_grid_for_depth(d, grid):
    # widths of 64 keep two channels per GroupNorm group even on the 1x1 map of d = 8
    config = tiny_config(d=d, base_channels=64, max_channels=64)
    model = scvae.SCVAE(config)
    with torch.no_grad():
        z = model.sparse_codes(torch.randn(1, 3, 256, 256))
    assert z.shape == (1, grid, grid, config.num_atoms)


def test_forward_shapes_and_loss_parts():
    model = scvae.SCVAE(tiny_config())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(x)
    assert out.reconstruction.shape == x.shape
    assert out.codes.shape == (2, 8, 8, 32)
    assert out.features.shape == out.code_reconstruction.shape == (2, 8, 8, 16)
    parts = model.loss(x, out)
    assert set(parts) == {"loss", "recon", "latent", "l1"}
    assert parts["l1"] > 0
    official = scvae.SCVAE(tiny_config(lista_mode="official"))
    assert official.loss(x)["l1"] == 0


@pytest.mark.parametrize("mode", ["paper", "official"])
def test_gradients_reach_encoder_through_lista(mode):
    model = scvae.SCVAE(tiny_config(lista_mode=mode))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    model.loss(x)["loss"].backward()
    enc_grad = model.encoder.conv_in.weight.grad
    assert enc_grad is not None and enc_grad.abs().sum() > 0
    lista_params = [p for p in model.lista.parameters()]
    assert all(p.grad is not None for p in lista_params)


def test_codes_are_sparse():
    torch.manual_seed(0)
    model = scvae.SCVAE(tiny_config(alpha=0.5))
    with torch.no_grad():
        z = model.sparse_codes(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert (z == 0).float().mean() > 0.3
    assert scvae.hoyer_sparsity(z).mean() > 0.2


def test_presets_and_param_counts():
    paper = scvae.SCVAE(scvae.preset("paper-d3")).num_parameters()["total"]
    assert 40e6 < paper < 50e6
    small = scvae.SCVAE(scvae.preset("small-d3")).num_parameters()["total"]
    assert 2e6 < small < 4e6
    with pytest.raises(ValueError, match="unknown model preset"):
        scvae.preset("nope")


def test_config_validation():
    with pytest.raises(ValueError, match="perfect square"):
        scvae.SCVAEConfig(code_dim=60)
    with pytest.raises(ValueError, match="lista_mode"):
        scvae.SCVAEConfig(lista_mode="fancy")


def test_input_size_must_divide():
    model = scvae.SCVAE(tiny_config())
    with pytest.raises(ValueError, match="divisible"):
        model.encode(torch.zeros(1, 3, 30, 30))


@pytest.mark.parametrize("model_type", ["scvae", "vsc"])
def test_bfloat16_levels_round_only_the_fine_levels(model_type):
    torch.manual_seed(0)
    config = dict(d=3, base_channels=8, max_channels=16, code_dim=16, num_atoms=32)
    model = (scvae.SCVAE(tiny_config(**config)) if model_type == "scvae" else scvae.VSC(scvae.VSCConfig(**config))).eval()
    # VSC's codes are thresholded spikes, where one flipped spike is a large change: compare its means.
    values = model.sparse_codes if model_type == "scvae" else (lambda x, *levels: model.posterior(x, *levels)[0])
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        exact = values(x)
        assert torch.equal(values(x, 0), exact)
        errors = []
        for levels in (1, 3, 10):  # 10: more levels than the encoder has, so every level
            codes = model.sparse_codes(x, levels)
            assert codes.dtype == torch.float32 and codes.shape == exact.shape
            errors.append(((values(x, levels) - exact).norm() / exact.norm()).item())
    assert 0 < errors[0] < 0.05 and all(e < 0.1 for e in errors)
