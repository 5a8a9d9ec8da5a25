"""The VSC backbone: its KL, its sparsity, training through the shared trainer, checkpoints, the CLI."""

import json
import math

import pytest
import torch

import scvae
from scvae.vsc import VSC, VSCConfig, spike_slab_kl

from conftest import ROOT, run_cli


def tiny_vsc(**changes) -> VSC:
    base = dict(d=2, base_channels=8, max_channels=16, num_res_blocks=1, code_dim=16, num_atoms=24)
    base.update(changes)
    return VSC(VSCConfig(**base))


def test_kl_matches_a_monte_carlo_estimate():
    """The closed form against E_q[log q(z) - log p(z)], sampled from the spike-and-slab posterior."""
    mu, logvar, logit = torch.tensor([0.0, 1.5, -0.7, 0.3]), torch.tensor([0.0, -1.0, 0.5, -2.0]), torch.tensor([0.0, 2.0, -1.0, 0.5])
    alpha = 0.3
    closed = spike_slab_kl(mu, logvar, logit, alpha)

    generator = torch.Generator().manual_seed(1)
    n = 400_000
    gamma, sigma = torch.sigmoid(logit), (0.5 * logvar).exp()
    on = torch.rand(n, 4, generator=generator) < gamma
    z = mu + sigma * torch.randn(n, 4, generator=generator)
    normal = torch.distributions.Normal
    log_ratio_on = gamma.log() + normal(mu, sigma).log_prob(z) - math.log(alpha) - normal(0.0, 1.0).log_prob(z)
    log_ratio_off = (1 - gamma).log() - math.log(1 - alpha)
    sampled = torch.where(on, log_ratio_on, log_ratio_off).mean(0)
    assert torch.allclose(closed, sampled, atol=0.02), (closed, sampled)
    # Zero exactly when the posterior is the prior, positive otherwise.
    at_prior = spike_slab_kl(torch.zeros(1), torch.zeros(1), torch.logit(torch.tensor([alpha])), alpha)
    assert abs(float(at_prior)) < 1e-6
    assert (closed[1:] > 0).all()


def _fit(model: VSC, x: torch.Tensor, steps: int, lr: float = 3e-3) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for step in range(steps):
        model.begin_step(step)
        parts = model.loss(x)
        optimizer.zero_grad()
        parts["loss"].backward()
        optimizer.step()
        losses.append(float(parts["loss"].detach()))
    return losses


def _images(n: int = 4, side: int = 16) -> torch.Tensor:
    """Smooth colour fields in [-1, 1]: learnable in a few steps, unlike white noise."""
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, 3, 3, generator=generator) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(side, side), mode="bilinear", align_corners=False)


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = tiny_vsc()
    losses = _fit(model, _images(), 25)
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.75 * sum(losses[:5]) / 5


def test_sparsity_of_the_codes_follows_the_spike_prior():
    """Same data, same seed: a lower prior spike probability alpha leaves fewer atoms on."""
    x = _images()
    active = {}
    for alpha in (0.05, 0.8):
        torch.manual_seed(0)
        model = tiny_vsc(spike_prior=alpha, beta=1.0)
        _fit(model, x, 20, lr=1e-2)
        with torch.no_grad():
            active[alpha] = float((model.eval().sparse_codes(x) != 0).float().mean())
    assert active[0.05] < 0.25 < 0.6 < active[0.8], active


def test_slab_warm_up_scales_in_over_its_steps():
    model = tiny_vsc(warmup_start=10, warmup_end=30)
    seen = []
    for step in (0, 10, 20, 30, 100):
        model.begin_step(step)
        seen.append(model.warmup)
    assert seen == [0.0, 0.0, 0.5, 1.0, 1.0]
    # Without a warm-up the slab is on from the first step.
    plain = tiny_vsc()
    plain.begin_step(0)
    assert plain.warmup == 1.0


def test_bad_vsc_settings_are_refused():
    for bad in (dict(spike_prior=0.0), dict(spike_prior=1.0), dict(temperature=0.0), dict(beta=-1.0),
                dict(warmup_start=5, warmup_end=2)):
        with pytest.raises(ValueError, match="invalid VSC config"):
            VSCConfig(d=2, base_channels=8, max_channels=16, code_dim=16, num_atoms=24, **bad)


def test_checkpoint_round_trip_through_the_shared_loader(tmp_path):
    torch.manual_seed(0)
    model = tiny_vsc(spike_prior=0.1).eval()
    path = scvae.save_model(model, tmp_path / "vsc")
    loaded = scvae.load(str(path))
    assert isinstance(loaded, VSC) and loaded.config == model.config
    x = _images(2, 32)
    with torch.no_grad():
        codes = loaded.sparse_codes(x)
        assert torch.equal(codes, model.sparse_codes(x))
        assert codes.shape == (2, 8, 8, 24)                       # the same h x w x K grid as an SC-VAE's
        # Eval mode reconstructs from the deterministic codes: the same output twice.
        assert torch.equal(loaded(x).reconstruction, loaded(x).reconstruction)


def test_train_resume_and_segment_with_the_vsc_recipe(tmp_path, capsys, monkeypatch):
    """`segtool train recipes/vsc-cpu.yaml` made tiny, resumed, and its checkpoint used by `segment --model`."""
    from PIL import Image

    monkeypatch.setenv("COLUMNS", "1000")
    images = tmp_path / "images"
    images.mkdir()
    generator = torch.Generator().manual_seed(0)
    for i in range(6):
        pixels = (torch.rand(24, 24, 3, generator=generator) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(images / f"{i}.png")
    run = tmp_path / "run"
    tiny = ["--set", "model.d=3", "--set", "model.base_channels=8", "--set", "model.max_channels=16",
            "--set", "model.code_dim=16", "--set", "model.num_atoms=24", "--set", "model.warmup_end=3",
            "--set", "data.holdout=2", "--set", "data.cache=false", "--set", "data.val_resolution=16",
            "--set", "train.batch_size=2", "--set", "train.resolution=16", "--set", "train.resolution_schedule=[]",
            "--set", "train.warmup_steps=0", "--set", "train.log_every=1", "--set", "train.ckpt_every=2"]
    recipe = str(ROOT / "recipes" / "vsc-cpu.yaml")
    code, _, err = run_cli(capsys, "train", recipe, "--data-root", images, "--out", run, "--max-steps", 2, *tiny,
                           "--device", "cpu")
    assert code == 0, err
    code, _, err = run_cli(capsys, "train", recipe, "--data-root", images, "--out", run, "--max-steps", 4, *tiny,
                           "--device", "cpu", "--resume")
    assert code == 0, err
    assert "resumed from" in err
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "kind" not in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]                # no step twice, none missing
    assert all("kl" in r and "recon" in r for r in steps)            # the backbone's own loss terms
    assert any(r.get("kind") == "checkpoint" and "val_psnr" in r for r in rows)
    checkpoint = run / "checkpoints" / "step-00000004"
    assert isinstance(scvae.load(str(checkpoint)), VSC)

    out = tmp_path / "masks"
    code, _, err = run_cli(capsys, "segment", images / "0.png", "--out", out, "--model", checkpoint, "--device", "cpu")
    assert code == 0, err
    assert (out / "0_mask.png").is_file()
