"""The model shipped inside the package: present, small, trained (not random), and the default."""

import json
import subprocess

import numpy as np
import pytest
import torch

import scvae
import scvae.registry
from conftest import PYTHON, subprocess_env


def natural_images(size: int = 128) -> torch.Tensor:
    from skimage import data

    from segtool.pipeline.features import resize_image

    out = []
    for img in (data.astronaut(), data.chelsea(), data.coffee()):
        side = min(img.shape[:2])
        top, left = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        crop = resize_image(np.ascontiguousarray(img[top:top + side, left:left + side]), size, size)
        out.append(torch.from_numpy(crop).permute(2, 0, 1).float() / 127.5 - 1.0)
    return torch.stack(out)


def test_the_default_model_is_shipped_as_safetensors_within_the_size_limit():
    assert scvae.DEFAULT_MODEL in scvae.available_models()
    folder = scvae.registry.resolve(scvae.DEFAULT_MODEL)
    weights = folder / "model.safetensors"
    assert weights.stat().st_size <= 25 * 2**20
    config = json.loads((folder / "config.json").read_text())
    assert config["d"] == 3 and config["lista_mode"] == "paper"
    assert (folder / "MODEL_CARD.md").is_file()


def test_the_shipped_model_reconstructs_photos_it_never_saw_with_sparse_codes():
    from scvae.training.metrics import evaluate_reconstruction

    model = scvae.load()
    metrics = evaluate_reconstruction(model, natural_images())
    # A random network reads 10 dB and SSIM 0.12 here; the shipped one 19 dB and 0.61.
    assert metrics["val_psnr"] > 16.0
    assert metrics["val_ssim"] > 0.45
    assert metrics["val_active"] < 0.45  # random weights: 0.47; trained: 0.36 (the rest exactly zero)


@pytest.fixture()
def disc_photo(tmp_path):
    """A red disc on a textured green field: an object any sane pipeline must find."""
    rng = np.random.default_rng(0)
    h = w = 160
    yy, xx = np.mgrid[:h, :w]
    field = np.stack([40 + 30 * np.sin(xx / 5.0), 120 + 30 * np.cos(yy / 7.0), 50 * np.ones((h, w))], -1)
    field += rng.normal(0, 8, field.shape)
    disc = (yy - 85) ** 2 + (xx - 75) ** 2 < 45 ** 2
    field[disc] = [200, 40, 50] + rng.normal(0, 8, (disc.sum(), 3))
    from PIL import Image

    path = tmp_path / "disc.png"
    Image.fromarray(np.clip(field, 0, 255).astype(np.uint8)).save(path)
    return path, disc


def test_segment_without_model_uses_the_shipped_one_and_finds_the_object(disc_photo, tmp_path):
    from PIL import Image

    path, truth = disc_photo
    out = tmp_path / "out"
    proc = subprocess.run([PYTHON, "-m", "segtool", "segment", str(path), "--out", str(out), "--json"],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    mask = np.asarray(Image.open(out / "disc_mask.png")) > 127
    assert mask.shape == truth.shape
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.85
