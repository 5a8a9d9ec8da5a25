"""The geodesic objectness cue (segtool.pipeline.foreground.geodesic_cue): exact shortest paths,
a background reached from the frame by a smooth gradient reads as background even where it is
central, an object walled off by its outline reads as object even where it touches the frame, and
the scorer that weighs it gets it from the pipeline."""

import numpy as np
import pytest

from segtool.pipeline.foreground.cues import CUE_NAMES, GEODESIC_CUE, SALIENCY_CUE, cluster_cues
from segtool.pipeline.foreground.geodesic_cue import (all_pairs_geodesic, geodesic_background_probability,
                                                      geodesic_objectness_grid)


def dijkstra_reference(features: np.ndarray, texture: float = 0.5) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import dijkstra

    h, w = features.shape[:2]
    idx = np.arange(h * w).reshape(h, w)
    a = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    b = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    flat = features.reshape(h * w, -1)
    step = np.linalg.norm(flat[a] - flat[b], axis=1)
    weight = np.maximum(step / np.median(step) - texture, 0.0) + 1e-12  # scipy drops zero-weight edges
    graph = coo_matrix((np.concatenate([weight, weight]), (np.concatenate([a, b]), np.concatenate([b, a]))),
                       shape=(h * w, h * w)).tocsr()
    return dijkstra(graph, directed=False)


@pytest.mark.parametrize("shape", [(7, 7), (6, 11), (12, 5)])
def test_all_pairs_distances_are_the_shortest_paths(shape):
    features = np.random.default_rng(sum(shape)).normal(size=(*shape, 3))
    features[1:4, 1:4] += 3.0  # an outline, so that paths bend around it
    assert np.allclose(all_pairs_geodesic(features), dijkstra_reference(features), atol=1e-6)


def disc_scene(n: int = 16):
    yy, xx = np.mgrid[:n, :n]
    disc = (yy - n / 2 + 0.5) ** 2 + (xx - n / 2 + 0.5) ** 2 < (n / 4) ** 2
    return yy, xx, disc


def test_a_walled_off_disc_is_object_and_its_surround_background():
    yy, xx, disc = disc_scene()
    features = np.random.default_rng(0).normal(0, 0.05, (16, 16, 3))
    features[disc] += 3.0
    background = geodesic_background_probability(features)
    assert background[disc].max() < 0.2 and background[~disc].mean() > 0.7
    assert background[~disc].min() > background[disc].max() + 0.1  # every surround cell reads more background


def test_a_central_patch_reached_by_a_smooth_gradient_is_background():
    """A sky shading from the top of the frame, over textured ground: a cell in its middle touches
    no border and is still background, as the border reaches it by small steps only; the same
    cells behind an outline are object."""
    rng = np.random.default_rng(1)
    features = rng.normal(0, 1.0, (16, 16, 3))                            # ground: texture
    rows = np.arange(7)[:, None, None]
    features[:7] = np.concatenate([rows * 0.05 + np.zeros((7, 16, 1)), np.zeros((7, 16, 2))], axis=-1)
    features[:7] += rng.normal(0, 0.01, (7, 16, 3))                       # sky: a smooth gradient
    patch = (slice(2, 6), slice(6, 10))
    walled = features.copy()
    walled[patch] += 10.0
    assert geodesic_background_probability(features)[patch].min() > 0.8
    assert geodesic_background_probability(walled)[patch].max() < 0.2


def test_the_grid_cue_reads_an_rgb_image_on_a_coarser_grid():
    image = np.full((128, 128, 3), (40, 90, 40), np.uint8)
    image[40:88, 40:88] = (240, 200, 30)
    grid = geodesic_objectness_grid(image, 32, 32)
    assert grid.shape == (32, 32) and grid.dtype == np.float32
    assert grid[14:18, 14:18].min() > 0.8 and grid[:4].max() < 0.2 and grid[:, :4].max() < 0.2


def test_the_geodesic_grid_adds_each_clusters_mean_as_the_eleventh_cue():
    _, _, disc = disc_scene()
    labels = disc.astype(int)
    features = np.random.default_rng(2).normal(0, 0.1, (16, 16, 4))
    saliency = np.where(disc, 0.9, 0.1)
    geodesic = np.where(disc, 0.8, 0.05)
    ten, _ = cluster_cues(labels, features, saliency)
    eleven, ids = cluster_cues(labels, features, saliency, geodesic)
    assert eleven.shape == (2, len(CUE_NAMES) + 2) and np.array_equal(eleven[:, :-1], ten)
    assert eleven[ids.index(1), -1] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="geodesic grid is 8x16"):
        cluster_cues(labels, features, saliency, geodesic[:8])


def test_a_scorer_that_weighs_the_geodesic_cue_gets_it_from_the_pipeline(tmp_path):
    from segtool.pipeline.foreground.rules import select_foreground
    from segtool.pipeline.foreground.scorer import ClusterScorer, load_scorer
    from segtool.pipeline.registry import build_segmenter, parse_method

    n = len(CUE_NAMES) + 2
    # Only the geodesic cue counts, so the choice shows that the pipeline computed it.
    coef = [0.0] * (n - 1) + [8.0]
    scorer = ClusterScorer([*CUE_NAMES, SALIENCY_CUE, GEODESIC_CUE], [0.0] * n, [1.0] * n, coef, -4.0)
    path = tmp_path / "geodesic.json"
    scorer.save(path)
    assert load_scorer(str(path)).uses_geodesic
    _, _, disc = disc_scene()
    labels = disc.astype(int)
    features = np.random.default_rng(3).normal(0, 0.1, (16, 16, 4))
    with pytest.raises(ValueError, match="geodesic"):
        select_foreground(labels, "scored", features=features, scorer=str(path), saliency=np.zeros((16, 16)))
    image = np.full((96, 96, 3), (30, 60, 120), np.uint8)
    image[30:66, 30:66] = (250, 240, 60)
    segmenter = build_segmenter(parse_method(f"colour-pipeline[scorer={path}]"))
    assert segmenter.scorer_uses_geodesic
    mask = segmenter.segment(image).mask
    inside = np.zeros(mask.shape, bool)
    inside[30:66, 30:66] = True
    assert mask[inside].mean() > 0.9 and mask[~inside].mean() < 0.1


def test_the_pipeline_reads_the_cue_from_rbds_copy_smoothed_when_the_image_is_noisy(tmp_path):
    """As RBD does: noise puts a colour step between every two cells, and the cue read from the raw
    noisy image walls off less of the disc than the cue read from the smoothed copy."""
    from segtool.pipeline.registry import build_segmenter, parse_method

    yy, xx = np.mgrid[:128, :128]
    disc = (yy - 64) ** 2 + (xx - 64) ** 2 < 30 ** 2
    clean = np.full((128, 128, 3), 120, np.uint8)
    clean[disc] = (150, 110, 90)  # a low-contrast lesion on skin
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.2 * 255, clean.shape), 0, 255).astype(np.uint8)
    segmenter = build_segmenter(parse_method("scvae"), extractor_factory=lambda: None)
    assert segmenter.scorer_uses_geodesic
    inside = disc[2::4, 2::4]  # the 32 x 32 grid's cell centres
    truth = geodesic_objectness_grid(clean, 32, 32)
    raw = geodesic_objectness_grid(noisy, 32, 32)
    read = segmenter.geodesic_of(noisy, (32, 32))
    assert np.abs(read - truth)[inside].mean() < np.abs(raw - truth)[inside].mean()
    assert np.array_equal(segmenter.geodesic_of(clean, (32, 32)), truth)  # a clean image is read as it is
