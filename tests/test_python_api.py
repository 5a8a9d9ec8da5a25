"""The one-call Python API (`segtool.segment`, `segtool.Segmenter`) and README.md's Python examples."""

import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import segtool
from segtool.errors import InputError

from conftest import ROOT, subprocess_env, tiny_model  # noqa: F401 (fixture)


def disc_image(height: int = 48, width: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 70, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    image[(yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (min(height, width) / 4) ** 2] = (240, 210, 70)
    return image


def test_import_segtool_stays_light():
    probe = ("import sys, segtool\nsegtool.__version__\n"
             "print([m for m in ('numpy', 'torch', 'sklearn', 'cv2', 'PIL') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=subprocess_env(), cwd=ROOT,
                          timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_segment_takes_a_path_an_array_or_a_pil_image(tiny_model, tmp_path):
    image = disc_image()
    path = tmp_path / "disc.png"
    Image.fromarray(image).save(path)
    masks = [segtool.segment(x, k=3, model=tiny_model) for x in (path, str(path), image, Image.open(path),
                                                                   image.astype(np.float32) / 255)]
    for mask in masks:
        assert mask.dtype == bool and mask.shape == (48, 64)
        assert np.array_equal(mask, masks[0])   # one image, whatever form it comes in
    assert 0 < masks[0].mean() < 1


def test_segmenter_is_built_by_name_and_loads_its_model_once(tiny_model, monkeypatch):
    import scvae

    loads = []
    real_load = scvae.load
    monkeypatch.setattr(scvae, "load", lambda *a, **kw: loads.append(a) or real_load(*a, **kw))
    seg = segtool.Segmenter("scvae", k=3, model=tiny_model)
    assert loads == []                                      # nothing loaded until the first image
    first, second = seg(disc_image()), seg.segment(disc_image(40, 40))
    assert len(loads) == 1
    assert first.mask.shape == (48, 64) and second.mask.shape == (40, 40)
    assert seg.settings()["k"] == 3 and len(first.cluster_sizes) == 3
    loaded = real_load(tiny_model)
    assert np.array_equal(segtool.Segmenter(k=3, model=loaded)(disc_image()).mask, first.mask)   # a loaded model
    assert segtool.Segmenter("grabcut")(disc_image()).mask.shape == (48, 64)   # any method by name


@pytest.mark.parametrize("bad, message", [([1, 2, 3], "numpy array or a PIL image"),
                                          (np.zeros((4, 4, 3), np.uint8), "too small"),
                                          (np.zeros((20, 20, 2), np.uint8), "H x W x 3"),
                                          (np.full((20, 20, 3), 2.0), "[0, 1]")])
def test_bad_images_are_one_clear_error(bad, message, tiny_model):
    with pytest.raises(InputError, match=re.escape(message)):
        segtool.Segmenter(k=3, model=tiny_model).segment(bad)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def test_every_python_block_of_the_readme_runs(tmp_path):
    """README.md's Python examples, run as written (the shipped model, a photo from scikit-image)."""
    from skimage import data

    blocks = python_blocks((ROOT / "README.md").read_text())
    assert blocks, "README.md has no ```python block"
    Image.fromarray(data.chelsea()).save(tmp_path / "photo.jpg")
    for i, block in enumerate(blocks):
        script = tmp_path / f"readme_{i}.py"
        script.write_text(block)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                              env={**subprocess_env(), "PYTHONPATH": str(ROOT)}, timeout=300)
        assert proc.returncode == 0, f"block {i}:\n{block}\n{proc.stderr}"
    mask = Image.open(tmp_path / "photo_mask.png")
    assert mask.size == (451, 300) and set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}
