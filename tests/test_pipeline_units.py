"""Units of the segmentation pipeline, used as a library: metrics, clustering, the foreground rule,
the code cache and the model input size."""

import warnings

import numpy as np
import pytest

import scvae
from segtool.pipeline.cluster import kmeans_labels, kmeans_labels_per_k, spectral_labels
from segtool.pipeline.extract import CodeExtractor, model_input_size
from segtool.pipeline.foreground.rules import cluster_boundary_connectivity, geodesic_background_probability, select_foreground
from segtool.evaluation.metrics import score_mask

from conftest import tiny_config


# --- metrics ------------------------------------------------------------------------------------

def square(n: int, top: int, left: int, size: int) -> np.ndarray:
    m = np.zeros((n, n), bool)
    m[top:top + size, left:left + size] = True
    return m


def test_iou_and_dice_on_hand_made_masks():
    gt = square(10, 0, 0, 4)                      # 16 pixels
    pred = square(10, 0, 2, 4)                    # 16 pixels, 8 shared with gt
    s = score_mask(pred, gt)
    assert s.iou == pytest.approx(8 / 24)
    assert s.dice == pytest.approx(2 * 8 / 32)
    assert score_mask(gt, gt).iou == 1.0 and score_mask(gt, gt).dice == 1.0
    assert score_mask(square(10, 6, 6, 4), gt).iou == 0.0  # disjoint


def test_iem_scores_the_better_of_mask_and_inverse():
    gt = square(10, 2, 2, 6)
    inverted = ~gt
    s = score_mask(inverted, gt)
    # Strict is what the user gets: the background. IEM forgives the foreground choice.
    assert s.iou == 0.0 and s.dice == 0.0
    assert s.iem_iou == 1.0 and s.iem_dice == 1.0
    assert s.inverse_better
    # When the prediction is the better one, IEM equals strict and no inversion is reported.
    good = score_mask(square(10, 2, 2, 5), gt)
    assert (good.iem_iou, good.iem_dice, good.inverse_better) == (good.iou, good.dice, False)
    # DICE follows IEM's IoU choice, so the pair describes one mask.
    odd = score_mask(square(10, 0, 0, 3), gt)
    chosen = ~square(10, 0, 0, 3) if odd.inverse_better else square(10, 0, 0, 3)
    assert odd.iem_dice == pytest.approx(score_mask(chosen, gt).dice)


def test_empty_masks():
    empty = np.zeros((8, 8), bool)
    both = score_mask(empty, empty)
    assert both.iou == 1.0 and both.dice == 1.0  # nothing to find, nothing found
    gt = square(8, 2, 2, 4)
    missed = score_mask(empty, gt)
    assert missed.iou == 0.0 and missed.dice == 0.0
    # The inverse of an empty prediction is the whole image: IoU = the object's share of it.
    assert missed.iem_iou == pytest.approx(16 / 64) and missed.inverse_better
    with pytest.raises(ValueError):
        score_mask(empty, np.zeros((8, 9), bool))


# --- clustering ---------------------------------------------------------------------------------

def two_blobs(seed: int = 0, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Two well-separated blobs of 256-dim vectors whose within-blob squared distances (~2000) make
    exp(-d^2) underflow to 0: the regime of real code vectors."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 2, (n, 256)), rng.normal(0, 2, (n, 256)) + 4.0])
    return x, np.repeat([0, 1], n)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_and_spectral_separate_two_blobs():
    x, truth = two_blobs()
    assert same_partition(kmeans_labels(x, 2, seed=0), truth)
    assert same_partition(spectral_labels(x, 2, seed=0)[2], truth)


def test_clustering_is_deterministic_for_a_seed():
    x, _ = two_blobs(seed=1)
    assert np.array_equal(kmeans_labels(x, 3, seed=5), kmeans_labels(x, 3, seed=5))
    assert np.array_equal(spectral_labels(x, 3, seed=5)[3], spectral_labels(x, 3, seed=5)[3])
    # Label ids are canonical (the first vector's cluster is 0), so runs compare directly.
    assert kmeans_labels(x, 2, seed=0)[0] == 0 and spectral_labels(x, 2, seed=0)[2][0] == 0


def test_spectral_gives_every_requested_k_from_one_call():
    x, truth = two_blobs(seed=2)
    labels = spectral_labels(x, ks=[2, 3], seed=0)
    assert sorted(labels) == [2, 3]
    assert len(np.unique(labels[2])) == 2 and len(np.unique(labels[3])) == 3
    assert same_partition(labels[2], truth)
    # k = 3 refines the two blobs: no third cluster straddles them.
    assert all(len(set(truth[labels[3] == c])) == 1 for c in range(3))


def test_sklearn_default_gamma_fails_where_the_median_scaled_affinity_works():
    # The reason for the median-scaled rbf: with gamma = 1 every affinity underflows to 0, the
    # graph falls apart into single points, and the "clusters" are arbitrary.
    from sklearn.cluster import SpectralClustering

    x, truth = two_blobs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that the graph is not fully connected
        default = SpectralClustering(2, affinity="rbf", gamma=1.0, random_state=0).fit_predict(x)
    assert not same_partition(default, truth)
    assert same_partition(spectral_labels(x, 2)[2], truth)


def test_k_beyond_the_number_of_vectors_is_a_value_error():
    x, _ = two_blobs(n=3)
    with pytest.raises(ValueError, match="larger than"):
        spectral_labels(x, 7)
    with pytest.raises(ValueError, match="at least 2"):
        kmeans_labels(x, 1)


# --- foreground rule ----------------------------------------------------------------------------

def centred_square_labels(n: int = 16, size: int = 6) -> np.ndarray:
    labels = np.zeros((n, n), int)
    start = (n - size) // 2
    labels[start:start + size, start:start + size] = 1
    return labels


def test_simple_rule_picks_the_centred_square():
    labels = centred_square_labels()
    choice = select_foreground(labels, "simple")
    assert choice.foreground_clusters == [1]
    assert np.array_equal(choice.mask, labels == 1)
    scores = cluster_boundary_connectivity(labels)
    assert scores[1] == 0.0  # it never touches the border
    assert scores[0] == pytest.approx(60 / np.sqrt(16 * 16 - 36))  # 60 border cells


def test_geodesic_background_probability_is_low_inside_a_distinct_blob():
    rng = np.random.default_rng(0)
    features = rng.normal(0, 0.05, (16, 16, 4))
    features[5:11, 5:11] += 3.0
    bg = geodesic_background_probability(features)
    assert bg[5:11, 5:11].max() < 0.2
    border = np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]])
    assert border.min() > 0.8
    choice = select_foreground(centred_square_labels(), "geodesic", features=features)
    assert choice.foreground_clusters == [1]


@pytest.mark.parametrize("rule", ["simple", "geodesic"])
def test_mask_is_never_empty_or_full(rule):
    features = np.random.default_rng(0).normal(0, 1, (12, 12, 3))
    halves = np.zeros((12, 12), int)
    halves[:, 6:] = 1
    # Both halves are border-heavy: no cluster qualifies, yet the most object-like one is kept ...
    choice = select_foreground(halves, rule, features=features)
    assert 0 < choice.mask.mean() < 1
    # ... and when every cluster qualifies, the most background-like one is dropped.
    choice = select_foreground(centred_square_labels(12, 4), rule, threshold=1e9, features=features)
    assert 0 < choice.mask.mean() < 1


# --- code extraction and its cache --------------------------------------------------------------

@pytest.fixture()
def counted_extractor(tmp_path, monkeypatch):
    import torch

    torch.manual_seed(0)
    model = scvae.SCVAE(tiny_config(d=3))
    calls = []
    encode = model.sparse_codes
    monkeypatch.setattr(model, "sparse_codes", lambda x, *levels: (calls.append(len(x)), encode(x, *levels))[1])
    return CodeExtractor(model, cache_dir=tmp_path / "codes"), calls


def photo(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def test_codes_come_from_the_cache_the_second_time(counted_extractor):
    extractor, calls = counted_extractor
    image = photo()
    (first,) = extractor.extract([image])
    assert calls == [1]
    assert first.shape[:2] == tuple(s // 8 for s in extractor.input_size(48, 64))  # d=3: the input / 8
    (second,) = extractor.extract([image.copy()])  # same pixels, another array
    assert calls == [1]
    assert np.allclose(first, second, rtol=1e-2, atol=1e-3)
    # A noisy copy is other pixels: its own entry, encoded afresh.
    from segtool.evaluation.noise import add_gaussian_noise

    extractor.extract([add_gaussian_noise(image, 0.1, seed=0, index=0)])
    assert calls == [1, 1]


def test_the_cache_is_per_model(counted_extractor, tmp_path, monkeypatch):
    extractor, calls = counted_extractor
    extractor.extract([photo()])
    # The same weights again (a new process loading the same checkpoint) find the entry ...
    again = CodeExtractor(extractor.model, cache_dir=tmp_path / "codes")
    again.extract([photo()])
    assert calls == [1]
    # ... other weights never see codes that another model made.
    other_model = scvae.SCVAE(tiny_config(d=3))  # a second random initialisation
    other_calls = []
    encode = other_model.sparse_codes
    monkeypatch.setattr(other_model, "sparse_codes", lambda x, *levels: (other_calls.append(len(x)), encode(x, *levels))[1])
    CodeExtractor(other_model, cache_dir=tmp_path / "codes").extract([photo()])
    assert other_calls == [1]


def test_bfloat16_codes_are_near_float32_and_cached_apart(counted_extractor, tmp_path):
    extractor, calls = counted_extractor
    image = photo(2)
    (exact,) = CodeExtractor(extractor.model, precision="float32", cache_dir=tmp_path / "codes").extract([image])
    half = CodeExtractor(extractor.model, precision="bfloat16", cache_dir=tmp_path / "codes")
    assert half.precision == "bfloat16"
    (rounded,) = half.extract([image])
    assert calls == [1, 1]  # the float32 entry is not the bfloat16 one: encoded again
    assert 0 < np.linalg.norm(rounded - exact) / np.linalg.norm(exact) < 0.1


def test_precision_names_are_checked_and_auto_follows_the_hardware():
    from scvae.devices import DeviceError, native_bfloat16, pick_precision

    assert pick_precision("float32", "cpu") == "float32" and pick_precision("bfloat16", "cpu") == "bfloat16"
    assert pick_precision("auto", "cpu") == ("bfloat16" if native_bfloat16("cpu") else "float32")
    with pytest.raises(DeviceError, match="half"):
        pick_precision("half", "cpu")


# A cold and a warm cache must give the same codes, or masks (and resumed evaluations) would
# depend on what happened to be cached.
def test_cached_codes_are_the_codes_a_fresh_extraction_gives(counted_extractor):
    extractor, _ = counted_extractor
    image = photo(1)
    (fresh,) = extractor.extract([image])
    (cached,) = extractor.extract([image])
    assert np.array_equal(fresh, cached)


# --- model input size ---------------------------------------------------------------------------

@pytest.mark.parametrize("height, width", [(256, 256), (480, 640), (640, 480), (100, 300), (33, 47)])
def test_model_input_size_keeps_aspect_and_multiples_of_8(height, width):
    h, w = model_input_size(height, width)
    assert h % 8 == 0 and w % 8 == 0
    assert w / h == pytest.approx(width / height, rel=0.06)  # up to the snapping to 8
    assert 0.85 * 256 ** 2 <= h * w <= 1.15 * 256 ** 2  # about the pixels the model was made for


def test_model_input_size_of_extreme_shapes():
    # 10x5000 is clamped to 1:8, still multiples of 8 and at least 4 cells a side.
    h, w = model_input_size(10, 5000)
    assert (h % 8, w % 8) == (0, 0) and h >= 32 and w / h == pytest.approx(8, rel=0.1)
    assert model_input_size(5000, 10) == (w, h)
    assert model_input_size(256, 256, multiple=16) == (256, 256)
    h16, w16 = model_input_size(300, 500, multiple=16)
    assert h16 % 16 == 0 and w16 % 16 == 0


# --- noise estimate and the noise-gated refinement ---------------------------------------------

def _smooth_photo(size: int = 96) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size] / size
    base = np.stack([0.3 + 0.4 * xs, 0.5 + 0.3 * ys, 0.6 - 0.3 * xs * ys], axis=-1)
    disc = (xs - 0.5) ** 2 + (ys - 0.5) ** 2 < 0.08
    base[disc] = [0.9, 0.2, 0.2]
    return (base * 255).astype(np.uint8), disc


@pytest.mark.parametrize("sigma", [0.05, 0.1, 0.2])
def test_noise_estimate_tracks_added_noise(sigma):
    from segtool.evaluation.noise import add_gaussian_noise
    from segtool.pipeline.refine import estimate_noise_sigma

    image, _ = _smooth_photo()
    assert estimate_noise_sigma(image) < 0.02
    noisy = add_gaussian_noise(image, sigma, seed=0, index=0)
    # Clipping at 0 and 1 and the grey average shave a little off; the order of magnitude must hold.
    assert 0.4 * sigma < estimate_noise_sigma(noisy) < 1.2 * sigma


def test_seeded_grabcut_snaps_to_the_object_and_skips_noisy_images():
    from segtool.evaluation.metrics import iou
    from segtool.evaluation.noise import add_gaussian_noise
    from segtool.pipeline.refine import grabcut_from_mask

    image, disc = _smooth_photo()
    seed = np.zeros_like(disc)
    seed[24:72, 24:72] = True  # a square around the disc: a coarse mask's typical error
    refined = grabcut_from_mask(image, seed)
    assert iou(refined, disc) > iou(seed, disc) + 0.1
    noisy = add_gaussian_noise(image, 0.3, seed=0, index=0)
    assert np.array_equal(grabcut_from_mask(noisy, seed), seed)  # too noisy: the seed is kept


# Edges mid-cell of an 8x8 grid over 128x128. The guided filter fits a linear model of the image in
# each window, so it finds the edge wherever it falls in the cell; superpixel snapping averages the
# bilinear map over each superpixel, so it finds the edge when the edge cells are mostly object
# (20..100: cells 69% object) but not when they are mostly background (27..101: 31%).
@pytest.mark.parametrize("method, lo, hi", [("guided", 27, 101), ("guided", 20, 100), ("superpixel", 20, 100)])
def test_edge_aware_upsampling_moves_the_outline_onto_the_image_edge(method, lo, hi):
    from segtool.pipeline.refine import upsample_mask
    from segtool.evaluation.metrics import boundary_f

    image = np.full((128, 128, 3), 40, np.uint8)
    truth = np.zeros((128, 128), bool)
    truth[lo:hi, lo:hi] = True
    image[truth] = (220, 200, 60)
    grid = truth.reshape(8, 16, 8, 16).mean(axis=(1, 3))
    plain = upsample_mask(grid, 128, 128)
    aware = upsample_mask(grid, 128, 128, image=image, method=method)
    assert boundary_f(aware, truth) > boundary_f(plain, truth) + 0.1
    assert (aware == truth).mean() > (plain == truth).mean()


def test_atom_histograms_count_active_atoms_in_the_reflected_window():
    from segtool.pipeline.features import atom_histograms

    rng = np.random.default_rng(0)
    codes = rng.normal(size=(7, 9, 5)) * (rng.random((7, 9, 5)) < 0.4)
    radius = 2
    padded = np.pad(codes != 0, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    expected = np.stack([[padded[i:i + 5, j:j + 5].mean(axis=(0, 1)) for j in range(9)] for i in range(7)])
    np.testing.assert_allclose(atom_histograms(codes, radius), expected, atol=1e-6)


def test_the_texture_block_joins_the_codes_and_not_the_colour_pipeline():
    from segtool.pipeline.segmenters import PipelineColourSegmenter, SCVAESegmenter
    from segtool.settings import CodeFeatureSettings

    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    codes = (rng.normal(size=(8, 8, 6)) * (rng.random((8, 8, 6)) < 0.5)).astype(np.float32)
    plain = SCVAESegmenter(None, features=CodeFeatureSettings()).features_from_codes(image, codes)
    textured = SCVAESegmenter(None, features=CodeFeatureSettings(texture_weight=1.0)).features_from_codes(image, codes)
    assert plain.shape == (8, 8, 6 + 3) and textured.shape == (8, 8, 6 + 6 + 3)
    np.testing.assert_array_equal(textured[..., :6], plain[..., :6])
    colour = PipelineColourSegmenter(features=CodeFeatureSettings(texture_weight=1.0)).feature_grids([image])[0]
    assert colour.shape[-1] == 3 + 3  # colour stands in for the codes, plus colour: no texture of codes


def test_kmeans_for_several_k_at_once_equals_each_k_alone():
    # All runs of all k iterate together; a k's result must not depend on the others asked for.
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(c, 0.7, (120, 12)) for c in range(5)])
    together = kmeans_labels_per_k(x, [2, 3, 5, 8], seed=7)
    for k in (2, 3, 5, 8):
        assert np.array_equal(together[k], kmeans_labels(x, k, seed=7))
        assert len(np.unique(together[k])) == k


def test_kmeans_inertia_matches_sklearn():
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(4)
    x = np.concatenate([rng.normal(c * 1.5, 1.0, (200, 8)) for c in range(6)])
    for k in (3, 6):
        ours = kmeans_labels(x, k, seed=0)
        inertia = sum(((x[ours == c] - x[ours == c].mean(axis=0)) ** 2).sum() for c in range(k))
        reference = KMeans(k, n_init=4, random_state=0).fit(x).inertia_
        assert inertia <= reference * 1.01


def test_kmeans_with_fewer_distinct_points_than_k_relocates_empty_clusters():
    # Three distinct points, four clusters: seeding runs out of new points, a cluster empties and
    # takes a far cell; every cluster stays pure.
    x = np.repeat(np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]), 30, axis=0)
    labels = kmeans_labels(x, 4, seed=1)
    assert len(np.unique(labels)) in (3, 4)
    for c in np.unique(labels):
        assert len(np.unique(x[labels == c], axis=0)) == 1


def test_a_soft_vote_averages_each_cells_cluster_probability_and_a_hard_one_the_choices():
    from segtool.pipeline.registry import build_segmenter, parse_method
    from segtool.pipeline.saliency import cue_work_copy

    rng = np.random.default_rng(3)
    image = np.clip(120 + rng.normal(0, 8, (96, 96, 3)), 0, 255).astype(np.uint8)
    image[30:66, 28:70] = (210, 70, 40)
    votes = {}
    for vote in ("hard", "soft"):
        segmenter = build_segmenter(parse_method(f"colour-pipeline[vote={vote}]"))
        features = segmenter.feature_grids([image])[0]
        copy = cue_work_copy(image)
        labels, choices, votes[vote] = segmenter.vote(features, segmenter.rbd_of(image, copy),
                                                      segmenter.geodesic_of(image, features.shape[:2], copy))
    hard = np.mean([choices[k].mask for k in labels], axis=0)
    soft = np.mean([np.vectorize(lambda c, k=k: 1 - choices[k].cluster_scores[c])(labels[k]) for k in labels], axis=0)
    assert np.array_equal(votes["hard"], hard) and np.allclose(votes["soft"], soft)
    assert 0 <= votes["soft"].min() and votes["soft"].max() <= 1 and len(np.unique(votes["soft"])) > len(labels) + 1
    assert votes["soft"][16, 16] > 0.5 > votes["soft"][1, 1]  # on the 32 x 32 grid: the block leans object, the ground not
    # A rule with no probabilities votes hard whatever is asked.
    simple = build_segmenter(parse_method("colour-pipeline[rule=simple,vote=soft]"))
    grid = simple.feature_grids([image])[0]
    labels, choices, plain = simple.vote(grid)
    assert np.array_equal(plain, np.mean([choices[k].mask for k in labels], axis=0))


def test_the_colour_view_mixes_the_codes_vote_with_the_colour_pipelines_on_the_same_grid():
    from segtool.pipeline.registry import build_segmenter, parse_method
    from segtool.pipeline.saliency import cue_work_copy
    from segtool.pipeline.segmenters import SCVAESegmenter
    from segtool.settings import CodeFeatureSettings

    rng = np.random.default_rng(5)
    image = np.clip(120 + rng.normal(0, 8, (96, 96, 3)), 0, 255).astype(np.uint8)
    image[30:66, 28:70] = (210, 70, 40)
    codes = rng.normal(size=(12, 12, 8)).astype(np.float32)  # codes that know nothing of the block
    copy = cue_work_copy(image)
    colour = build_segmenter(parse_method("colour-pipeline"))
    rbd, geodesic = colour.rbd_of(image, copy), colour.geodesic_of(image, (12, 12), copy)
    _, _, colour_votes = colour.vote(colour.colour_features(image, (12, 12)), rbd, geodesic)
    votes = {}
    for w in (0.0, 0.25, 1.0):
        segmenter = SCVAESegmenter(None, features=CodeFeatureSettings(colour_view=w))
        votes[w] = segmenter.votes_of(image, segmenter.features_from_codes(image, codes), rbd, geodesic)[2]
    np.testing.assert_allclose(votes[1.0], colour_votes)
    np.testing.assert_allclose(votes[0.25], 0.75 * votes[0.0] + 0.25 * colour_votes)
    assert not np.allclose(votes[0.0], colour_votes)  # the two views do differ here
    assert colour_votes[6, 6] > 0.5 > colour_votes[0, 0]  # colour finds the block
    with pytest.raises(ValueError, match="colour_view"):
        CodeFeatureSettings(colour_view=1.5)
