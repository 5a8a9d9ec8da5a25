"""segtool.pipeline.superpixels gives scikit-image's and scipy's results (SLIC labels, Lab, Otsu,
shortest paths) without their slow imports; the equality is what keeps the saliency vote's
measured figures valid, so it is checked exactly on photos and on noise."""

import subprocess
import sys

import numpy as np
import pytest
import skimage.data

from segtool.io.colour import lab_image, rgb_to_lab
from segtool.pipeline.features import shrink_to_pixels
from segtool.pipeline.superpixels import all_pairs_shortest_paths, otsu_threshold, slic_labels


def photos():
    noise = (np.random.default_rng(0).random((61, 90, 3)) * 255).astype(np.uint8)
    dark = (skimage.data.coffee() // 4).astype(np.uint8)  # a narrow range: the [0, 1] rescaling matters
    return [skimage.data.astronaut(), skimage.data.chelsea(), dark, noise]


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("n_segments, compactness", [(200, 10.0), (60, 25.0)])
def test_slic_labels_equal_scikit_image_slic(index, n_segments, compactness):
    from skimage.segmentation import slic

    image = shrink_to_pixels(photos()[index], 128 * 128, min_side=8)
    ours = slic_labels(image, n_segments=n_segments, compactness=compactness)
    theirs = slic(image, n_segments=n_segments, compactness=compactness, start_label=0, channel_axis=-1)
    assert ours.shape == image.shape[:2]
    np.testing.assert_array_equal(ours, theirs)


def test_rgb_to_lab_equals_scikit_image():
    from skimage.color import rgb2lab

    rgb = np.random.default_rng(1).random((40, 50, 3))
    rgb[0, :3] = [[0, 0, 0], [1, 1, 1], [0.01, 0.02, 0.03]]  # black, white, the linear segment of sRGB
    np.testing.assert_allclose(rgb_to_lab(rgb), rgb2lab(rgb), atol=1e-10)
    assert np.allclose(rgb_to_lab(np.ones((1, 1, 3)))[0, 0], [100, 0, 0], atol=0.01)  # D65 white (the matrix rounds a and b to ~0.005)


def test_lab_image_of_bytes_equals_scikit_image():
    from skimage.color import rgb2lab

    image = skimage.data.astronaut()[::8, ::8]
    np.testing.assert_allclose(lab_image(image), rgb2lab(image), atol=1e-4)  # float32 output
    np.testing.assert_allclose(lab_image(image / 255.0), rgb2lab(image), atol=1e-4)


@pytest.mark.parametrize("values", [np.random.default_rng(2).random(5000) ** 3,
                                    np.concatenate([np.full(300, 0.2), np.full(100, 0.9)]),
                                    np.arange(7.0)])
def test_otsu_threshold_equals_scikit_image(values):
    from skimage.filters import threshold_otsu

    assert otsu_threshold(values) == threshold_otsu(values)


def test_otsu_threshold_of_a_constant_is_that_constant():
    assert otsu_threshold(np.full(10, 0.25)) == 0.25


def test_shortest_paths_equal_dijkstra():
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    rng = np.random.default_rng(3)
    n = 60
    costs = np.full((n, n), np.inf)
    for i, j in rng.integers(0, n, (150, 2)):
        if i != j:
            costs[i, j] = costs[j, i] = rng.random()
    ours = all_pairs_shortest_paths(costs)
    sparse = coo_matrix(np.where(np.isinf(costs), 0, costs)).tocsr()
    np.testing.assert_allclose(ours, shortest_path(sparse, method="D", directed=False), rtol=1e-12)
    assert np.isinf(ours).any() or np.isfinite(ours).all()  # unreachable pairs stay infinite


def test_the_saliency_vote_imports_neither_scipy_nor_skimage_filters():
    code = ("import sys, numpy as np; from segtool.pipeline.saliency import saliency_vote, rbd_mask; "
            "im = (np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8); "
            "saliency_vote(im, 64, 80); rbd_mask(im); "
            "print(sorted(m for m in sys.modules if m.startswith(('scipy', 'skimage.filters', 'skimage.color', "
            "'skimage.segmentation.slic'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
