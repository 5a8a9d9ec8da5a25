"""The `rbd` baseline: robust background detection saliency (Zhu et al. 2014) + Otsu."""

import numpy as np
import pytest

from segtool.errors import UsageError
from segtool.pipeline.registry import build_segmenter, parse_method
from segtool.pipeline.saliency import rbd_saliency
from segtool.pipeline.segmenters import RBDSegmenter


def disc_image(size: int = 96, seed: int = 0):
    """Seeded noise around mid grey with a red disc (radius 22) in the centre."""
    rng = np.random.default_rng(seed)
    image = 128 + rng.normal(0, 6, (size, size, 3))
    ys, xs = np.mgrid[0:size, 0:size]
    disc = (ys + 0.5 - size / 2) ** 2 + (xs + 0.5 - size / 2) ** 2 <= 22 ** 2
    image[disc] = np.array([200, 60, 50]) + rng.normal(0, 6, (int(disc.sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8), disc


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("link_boundary", [True, False])
def test_rbd_finds_the_disc(link_boundary):
    image, disc = disc_image()
    mask = RBDSegmenter(link_boundary=link_boundary).segment(image).mask
    assert mask.shape == disc.shape and mask.dtype == bool
    assert iou(mask, disc) > 0.7


def test_rbd_saliency_map_and_mask_size():
    image, disc = disc_image()
    saliency = rbd_saliency(image, n_segments=100)
    assert saliency.shape == disc.shape and saliency.dtype == np.float64
    assert saliency.min() == 0.0 and saliency.max() == 1.0
    assert saliency[disc].mean() > saliency[~disc].mean() + 0.5
    wide = np.ascontiguousarray(np.concatenate([image, image[:, :24]], axis=1)[:70])  # 70 x 120
    assert RBDSegmenter().segment(wide).mask.shape == (70, 120)


def test_the_pipelines_rbd_reads_a_smoothed_copy_of_a_noisy_image_and_the_image_itself_when_clean():
    """With heavy noise every superpixel step is a colour step, and raw RBD calls the whole image
    salient; the pipeline's RBD (saliency cue and vote) smooths a noisy copy first and finds the
    disc again. A clean image is read as it is."""
    import cv2

    from segtool.evaluation.noise import add_gaussian_noise
    from segtool.pipeline.saliency import rbd, rbd_on_work_copy, saliency_cue_grid

    image, disc = disc_image()
    noisy = add_gaussian_noise(image, 0.2, 0, 0)
    cells = cv2.resize(disc.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA) > 0.5
    raw = saliency_cue_grid(rbd(noisy), 32, 32)
    assert (raw[~cells] > 0.5).mean() > 0.9  # the failure being mended
    smoothed = saliency_cue_grid(rbd_on_work_copy(noisy), 32, 32)
    assert smoothed[cells].mean() > 0.9 and (smoothed[~cells] > 0.5).mean() < 0.1
    assert np.array_equal(rbd_on_work_copy(image).saliency, rbd(image).saliency)


def test_rbd_is_deterministic():
    image, _ = disc_image(seed=1)
    first = RBDSegmenter().segment(image).mask
    assert np.array_equal(first, RBDSegmenter().segment(image).mask)
    assert np.array_equal(rbd_saliency(image), rbd_saliency(image))


def test_flat_image_gives_an_empty_mask():
    # Every superpixel is the border's colour: no saliency contrast, all background.
    mask = RBDSegmenter().segment(np.full((40, 50, 3), 90, np.uint8)).mask
    assert mask.shape == (40, 50) and not mask.any()


@pytest.mark.parametrize("settings, named", [
    ({"n_segments": 5}, "n_segments"), ({"n_segments": 6000}, "n_segments"), ({"n_segments": 20.5}, "n_segments"),
    ({"n_segments": "abc"}, "n_segments"), ({"n_segments": True}, "n_segments"),
    ({"compactness": 0}, "compactness"), ({"compactness": float("nan")}, "compactness"),
    ({"compactness": "x"}, "compactness"), ({"link_boundary": "yes"}, "link_boundary"),
    ({"link_boundary": 1}, "link_boundary"), ({"sigma_clr": -1}, "sigma_clr"),
    ({"sigma_bndcon": float("inf")}, "sigma_bndcon"), ({"sigma_spa": 0}, "sigma_spa"), ({"mu": -0.1}, "mu"),
])
def test_bad_settings_raise_at_construction(settings, named):
    with pytest.raises(ValueError, match=named):
        RBDSegmenter(**settings)


def test_rbd_method_spec_and_overrides():
    segmenter = build_segmenter(parse_method("rbd[link_boundary=false,n_segments=150,compactness=2e1]"))
    assert isinstance(segmenter, RBDSegmenter)
    assert segmenter.settings()["link_boundary"] is False
    assert segmenter.n_segments == 150 and segmenter.compactness == 20.0
    assert build_segmenter(parse_method("rbd")).settings()["link_boundary"] is True


@pytest.mark.parametrize("text, named", [("rbd[n_segments=abc]", "n_segments"), ("rbd[foo=1]", "foo"),
                                         ("rbd[link_boundary=maybe]", "link_boundary")])
def test_bad_overrides_are_usage_errors(text, named):
    with pytest.raises(UsageError, match=named):
        build_segmenter(parse_method(text))


# --- RBD saliency as the pipeline's second vote ---------------------------------------------------

def test_saliency_vote_is_centred_on_otsu_and_sized_as_asked():
    from segtool.pipeline.saliency import saliency_vote

    image, disc = disc_image()
    vote = saliency_vote(image, *disc.shape)
    assert vote.shape == disc.shape and vote.dtype == np.float32
    assert vote.min() >= 0.0 and vote.max() <= 1.0
    assert iou(vote > 0.5, RBDSegmenter().segment(image).mask) > 0.95  # 1/2 is where rbd cuts
    # A large photo is read on a small copy, and the vote comes back at the size asked for.
    big = np.ascontiguousarray(np.repeat(np.repeat(image, 8, axis=0), 8, axis=1))
    large_vote = saliency_vote(big, 300, 500)
    assert large_vote.shape == (300, 500)
    assert large_vote[150, 250] > 0.5 > large_vote[5, 5]


def test_the_pipeline_blends_its_votes_with_saliency():
    from segtool.pipeline.refine import clean_mask, map_cut
    from segtool.pipeline.saliency import saliency_vote

    image, disc = disc_image()
    colour = build_segmenter(parse_method("colour-pipeline"))
    assert colour.cfg.saliency_weight == 0.4  # the default blends ...
    assert build_segmenter(parse_method("colour")).cfg.saliency_weight == 0  # ... the classical baseline does not
    # All weight on saliency: the clustering's votes are ignored, the mask is the cleaned RBD vote,
    # cut where mask_cut says.
    vote = saliency_vote(image, *disc.shape)
    for cut, threshold in ((0.5, 0.5), ("otsu", map_cut(vote, "otsu"))):
        only_saliency = build_segmenter(parse_method(f"colour-pipeline[saliency_weight=1,mask_cut={cut}]"))
        expected = clean_mask(vote > threshold, colour.cfg.fill_holes, colour.cfg.min_part)
        assert np.array_equal(only_saliency.segment(image).mask, expected)
    assert iou(colour.segment(image).mask, disc) > 0.8
    with pytest.raises(UsageError, match="saliency_weight"):
        build_segmenter(parse_method("scvae[saliency_weight=1.5]"))


def test_the_final_map_is_cut_at_its_own_otsu_threshold_by_default():
    # An object only some clusterings found (votes 0.4 against 0 around it) survives the per-image
    # cut, where a fixed majority cut drops it; the cut stays within its bounds on a flat map.
    from segtool.pipeline.refine import OTSU_CUT_RANGE, map_cut

    image, disc = disc_image()
    votes = np.zeros((32, 32))
    votes[10:22, 10:22] = 0.4
    truth = np.kron(votes > 0, np.ones((image.shape[0] // 32, image.shape[1] // 32), bool))
    plain = "colour-pipeline[saliency_weight=0,upsample=bilinear,fill_holes=false,min_part=0"
    per_image = build_segmenter(parse_method(plain + "]")).full_resolution_mask(image, votes)
    majority = build_segmenter(parse_method(plain + ",mask_cut=0.5]")).full_resolution_mask(image, votes)
    assert not majority.any()
    assert iou(per_image, truth) > 0.9
    assert map_cut(np.zeros((8, 8)), "otsu") == OTSU_CUT_RANGE[0]
    assert map_cut(np.ones((8, 8)), "otsu") == OTSU_CUT_RANGE[1]
    assert map_cut(np.zeros((8, 8)), 0.3) == 0.3


def test_the_blend_bench_chooses_across_sets_and_leaves_each_out(tmp_path):
    """bench/saliency_blend.py: the pair chosen on all sets' selection subsets, and one per left-out set."""
    import json
    import subprocess
    import sys

    from conftest import ROOT, subprocess_env
    from test_cluster_scorer import synthetic_folder

    a, b = synthetic_folder(tmp_path / "a"), synthetic_folder(tmp_path / "b", count=4)
    out = tmp_path / "blend.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "saliency_blend.py"), f"folder:{a}", f"folder:{b}",
                           "--method", "colour-pipeline", "--weights", "0,0.5,1", "--gains", "1", "--json", str(out)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["chosen"]["saliency_weight"] in (0, 0.5, 1)
    assert set(result["leave_one_kind_out"]) == {"a", "b"} and set(result["held_out_iou"]) == {"a", "b"}
    assert "leave one kind out" in done.stdout
    # Gains 1 and 2 at weight 1 give the same masks: an exact tie, which keeps the incumbent
    # everywhere, and without one the first of the equals wins.
    tie = ["--weights", "1", "--gains", "1,2", "--json", str(out)]
    for incumbent, expected in ((["--incumbent", "1,2"], 2.0), ([], 1.0)):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "saliency_blend.py"), f"folder:{a}", f"folder:{b}",
                               "--method", "colour-pipeline", *tie, *incumbent],
                              capture_output=True, text=True, env=subprocess_env(), timeout=300)
        assert done.returncode == 0, done.stderr
        result = json.loads(out.read_text())
        assert result["chosen"]["saliency_gain"] == expected
        assert {fold["saliency_gain"] for fold in result["leave_one_kind_out"].values()} == {expected}
    # Cuts join the grid; the collected maps are kept, and a second run reads them back unchanged.
    cache = tmp_path / "items.pkl"
    cuts = ["--weights", "0,0.5", "--gains", "1", "--cuts", "otsu,0.5", "--incumbent", "0.5,1,0.5", "--no-loss",
            "--items-cache", str(cache), "--json", str(out)]
    outputs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "saliency_blend.py"), f"folder:{a}", f"folder:{b}",
                               "--method", "colour-pipeline", *cuts],
                              capture_output=True, text=True, env=subprocess_env(), timeout=300)
        assert done.returncode == 0, done.stderr
        outputs.append(out.read_text())
    assert cache.is_file() and outputs[0] == outputs[1]
    assert json.loads(outputs[0])["chosen"]["mask_cut"] in ("otsu", 0.5)
    assert "otsu" in done.stdout


def test_the_saliency_cue_probe_scores_both_scorers_in_and_out_of_kind(tmp_path):
    """bench/saliency_cue_probe.py: nine- and ten-cue scorers, each set scored in-sample and left out."""
    import json
    import subprocess
    import sys

    from conftest import ROOT, subprocess_env
    from test_cluster_scorer import synthetic_folder

    a, b = synthetic_folder(tmp_path / "a", count=6), synthetic_folder(tmp_path / "b", count=6)
    out = tmp_path / "probe.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "saliency_cue_probe.py"), f"folder:{a}", f"folder:{b}",
                           "--method", "colour-pipeline", "--json", str(out)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert set(result["sets"]) == {"a", "b"}
    for figures in result["sets"].values():
        assert figures["images"] == 4  # indices 1, 2, 4, 5 of six: the selection subset is never scored
        assert 0 <= figures["nine"] <= 1 and 0 <= figures["loko_ten"] <= 1
    assert "leave one kind out" in done.stdout


def test_the_blend_rule_keeps_the_incumbent_unless_a_challenger_wins_without_a_loss():
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    from saliency_blend import choose_setting

    rng = np.random.default_rng(0)
    base = {name: rng.uniform(0.3, 0.9, 200) for name in ("a", "b")}
    noise = {name: rng.normal(0, 0.01, 200) for name in ("a", "b")}

    def scored(shift_a: float, shift_b: float):
        return {"a": base["a"] + shift_a + noise["a"], "b": base["b"] + shift_b + noise["b"]}

    # A tie: as good on average, its own per-image differences (no lead beyond two standard errors).
    settings = {"incumbent": scored(0, 0), "lopsided": scored(0.2, -0.1), "even": scored(0.03, 0.02),
                "tie": {name: base[name] + rng.normal(0, 0.05, 200) for name in ("a", "b")}}
    scores = {(name, key): (values[name], values[name]) for key, values in settings.items() for name in ("a", "b")}
    keys = list(settings)
    assert choose_setting(keys, scores, ["a", "b"]) == "lopsided"                       # the best mean
    assert choose_setting(keys, scores, ["a", "b"], "incumbent") == "lopsided"          # a clear lead
    assert choose_setting(keys, scores, ["a", "b"], "incumbent", no_loss=True) == "even"  # but it loses b
    assert choose_setting(["incumbent", "tie"], scores, ["a", "b"], "incumbent") == "incumbent"  # a tie keeps it
    assert choose_setting(keys, scores, ["b"], "incumbent", no_loss=True) == "even"     # one set: b's best


def test_the_feature_map_bench_reproduces_the_pipeline_on_codes_and_scores_every_map(tmp_path):
    """bench/feature_maps.py: its codes row is the shipped pipeline's own IoU (same encoder pass,
    same settings), and every other map of the model goes through the same pipeline on each set."""
    import json
    import subprocess
    import sys

    from conftest import ROOT, subprocess_env
    from test_cluster_scorer import synthetic_folder

    from segtool.data.readers import open_dataset
    from segtool.evaluation.metrics import score_mask
    from segtool.evaluation.protocol import iem_crop
    from segtool.pipeline.models import load_extractor
    from segtool.pipeline.registry import build_segmenter, parse_method

    a, b = synthetic_folder(tmp_path / "a", count=3), synthetic_folder(tmp_path / "b", count=3)
    out = tmp_path / "maps.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "feature_maps.py"), f"folder:{a}", f"folder:{b}",
                           "--features", "codes,prelista,level2,codes+mid", "--colour-weights", "1,0", "--images", "all",
                           "--batch-size", "2",  # three images: two encoder passes, whose maps must line up
                           "--json", str(out)], capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    labels = {"codes", "prelista", "level2", "codes+mid", "codes (colour x0)", "prelista (colour x0)",
              "level2 (colour x0)", "codes+mid (colour x0)", "colour-pipeline"}
    assert set(result["sets"]) == {"a", "b"} and all(set(s) == labels for s in result["sets"].values())
    reader = open_dataset(f"folder:{a}")
    # The same batches as the bench's: bfloat16 kernels may round a batch of 2 and of 3 apart.
    segmenter = build_segmenter(parse_method("scvae"), extractor_factory=lambda: load_extractor(None, batch_size=2))
    crops = [iem_crop(*reader.load(s), 128, "bilinear") for s in reader.samples()]
    shipped = np.mean([score_mask(r.mask, truth).iou for (_, truth), r in
                       zip(crops, segmenter.segment_batch([image for image, _ in crops]))])
    assert result["sets"]["a"]["codes"]["iou"] == pytest.approx(100 * shipped, abs=1e-6)
    assert result["sets"]["a"]["colour-pipeline"]["vs_colour_pipeline"]["mean"] == 0
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "feature_maps.py"), f"folder:{a}", "--features", "pixels"],
                         capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert bad.returncode != 0 and "each map must be one of" in bad.stderr


def test_whitening_fitted_once_gives_unit_covariance_and_needs_unlabelled_photos(tmp_path):
    """bench/feature_maps.py --whiten: the transform fitted on some grids makes their cells'
    covariance the identity (no shrinkage left to speak of), shrinks towards the map as it was
    when the shrinkage is large, and is refused without photos to fit it on."""
    import subprocess
    import sys

    from conftest import ROOT, subprocess_env

    sys.path.insert(0, str(ROOT / "bench"))
    from feature_maps import fit_whitening, whiten

    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(6, 6)) * np.array([10, 5, 1, 1, 0.5, 0.1])
    grids = [(rng.normal(size=(8, 8, 6)) @ mixing + 3).astype(np.float32) for _ in range(20)]
    fit = fit_whitening(grids, 1e-9)
    cells = np.concatenate([whiten(g, fit).reshape(-1, 6) for g in grids]).astype(np.float64)
    assert np.allclose(cells.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(np.cov(cells.T, bias=True), np.eye(6), atol=1e-3)
    # Heavy shrinkage: a scaled copy of the centred map, directions and ratios kept.
    mean, transform = fit_whitening(grids, 1e6)
    assert np.allclose(transform / transform[0, 0], np.eye(6), atol=1e-3)
    from test_cluster_scorer import synthetic_folder

    a = synthetic_folder(tmp_path / "a", count=2)
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "feature_maps.py"), f"folder:{a}", "--whiten", "0.1"],
                         capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert bad.returncode != 0 and "needs --fit-photos" in bad.stderr
    # The whole path: the fit on a folder of photos (here the set's own images: a test, not a measurement).
    out = tmp_path / "white.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "feature_maps.py"), f"folder:{a}", "--features", "codes",
                           "--whiten", "1", "--fit-photos", str(a / "images"), "--images", "all", "--json", str(out)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr
    import json

    rows = json.loads(out.read_text())["sets"]["a"]
    assert set(rows) == {"codes", "codes (white a=1)", "colour-pipeline"} and rows["codes (white a=1)"]["images"] == 2


def test_support_overlap_affinity_and_its_bench_on_three_pipelines(tmp_path):
    """bench/code_affinity.py: the Jaccard overlap of active atom sets, and one run of its three
    spectral pipelines on the same images."""
    import json
    import subprocess
    import sys

    from conftest import ROOT, subprocess_env
    from test_cluster_scorer import synthetic_folder

    sys.path.insert(0, str(ROOT / "bench"))
    from code_affinity import jaccard

    supports = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1], [0, 0, 0, 0]], bool)
    overlap = jaccard(supports)
    assert overlap[0, 1] == pytest.approx(1 / 3) and overlap[0, 2] == 0 and overlap[1, 2] == pytest.approx(1 / 3)
    assert np.allclose(overlap, overlap.T) and np.allclose(np.diag(overlap), 1)
    a = synthetic_folder(tmp_path / "a", count=2)
    out = tmp_path / "affinity.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "code_affinity.py"), f"folder:{a}", "--images", "all",
                           "--json", str(out)], capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["sets"]["a"]
    assert set(rows) == {"scvae[method=spectral]", "jaccard x rbf", "colour-pipeline[method=spectral]"}
    assert all(r["images"] == 2 and 0 <= r["iou"] <= 100 for r in rows.values())
    assert rows["colour-pipeline[method=spectral]"]["vs_colour"]["mean"] == 0


def test_cell_cue_probe_auc_and_leave_one_kind_out_gain(capsys):
    """bench/cell_cue_probe.py: the per-image AUC (ties half, orientation kept), the relative cue,
    and the pooled fit without each set: a cue that marks the object on every kind adds AUC over
    the reference cues, one that is noise does not."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    from cell_cue_probe import CUES, auc, leave_one_kind_out, relative

    truth = np.array([0, 0, 1, 1], bool)
    assert auc(np.array([1.0, 2, 3, 4]), truth) == 1 and auc(np.array([4.0, 3, 2, 1]), truth) == 0
    assert auc(np.ones(4), truth) == 0.5 and auc(np.ones(4), np.ones(4, bool)) is None
    assert np.allclose(relative(np.full((2, 2), 3.0)), 0)
    rng = np.random.default_rng(0)
    pooled = {}
    for name in ("a", "b", "c"):
        y = rng.random(3000) < 0.4
        columns = {"centre": rng.normal(size=3000) + 0.3 * y, "saliency": rng.normal(size=3000) + 0.3 * y,
                   "sharpness": rng.normal(size=3000) + 2.0 * y,  # a strong cue on every kind
                   "code_l0": rng.normal(size=3000), "code_l1": rng.normal(size=3000)}
        pooled[name] = ([np.stack([columns.get(c, rng.normal(size=3000)) for c in CUES], axis=1)], [y])
    leave_one_kind_out(pooled)
    lines = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert len(lines) == 3
    for name, reference, sharpness, *noise in lines:
        assert len(noise) == len(CUES) - 3  # every cue but the two references and sharpness: noise here
        assert float(sharpness) > 0.1 and all(abs(float(gain)) < 0.02 for gain in noise)


def test_by_object_size_splits_held_out_rows_by_the_objects_share(tmp_path, capsys):
    """bench/by_object_size.py on a results.csv written by hand: held-out, noise-free rows only,
    each in the bin of its truth fraction, with its IoU, wrong-side rate and foreground share."""
    import csv
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    import by_object_size

    fields = ["dataset", "method", "noise", "index", "id", "iou", "inverse_better", "foreground_fraction", "truth_fraction"]
    rows = [("s", "m", 0, 1, "a", 0.8, 0, 0.2, 0.2),     # small object, right side
            ("s", "m", 0, 2, "b", 0.6, 0, 0.3, 0.3),
            ("s", "m", 0, 4, "c", 0.1, 1, 0.2, 0.7),     # large object, wrong side
            ("s", "m", 0, 0, "d", 0.0, 1, 0.9, 0.1),     # selection image: left out
            ("s", "m", 0.3, 1, "a", 0.0, 1, 0.9, 0.2)]   # noisy row: left out
    run = tmp_path / "run"
    run.mkdir()
    with (run / "results.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        writer.writerows(rows)
    by_object_size.main([str(run), "--bins", "0.5"])
    lines = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert lines == [["s", "m", "0.00-0.50", "2", "70.0", "0%", "25%"], ["s", "m", "0.50-1.00", "1", "10.0", "100%", "20%"]]
    with pytest.raises(SystemExit, match="not in"):
        by_object_size.main([str(run), "--methods", "other"])
    with pytest.raises(SystemExit, match="--bins"):
        by_object_size.main([str(run), "--bins", "2"])


def test_choose_method_picks_across_sets_on_the_selection_subset_and_leaves_each_kind_out(tmp_path):
    """bench/choose_method.py on a results.csv written by hand: only selection rows decide; a
    challenger that wins the mean but loses one set is kept out by --no-loss; each left-out set
    gets the choice of the others."""
    import csv
    import json
    import subprocess
    import sys

    from conftest import ROOT, subprocess_env

    rng = np.random.default_rng(0)
    # Per set, the true level of each method; the noise is small, so every lead is many SE.
    base, steady, lopsided, held_only = "scvae", "scvae[consensus=[4,6,8]]", "colour-pipeline", "scvae[k=3]"
    quick = "scvae[consensus=[6,8]]"  # a hair behind steady (a tie) and twice as fast
    levels = {"a": {base: 0.5, steady: 0.55, lopsided: 0.40, held_only: 0.5, quick: 0.549},
              "b": {base: 0.5, steady: 0.52, lopsided: 0.75, held_only: 0.5, quick: 0.519}}
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["dataset", "method", "noise", "index", "id", "iou", "seconds"])
        for name, methods in levels.items():
            for index in range(60):
                noise = {method: rng.normal(0, 0.01) for method in methods}
                # quick trails steady by a hair on average, within its own spread: a tie, not a loss.
                noise[quick] = noise[steady] + (0.005 if index % 2 else -0.005)
                for method, level in methods.items():
                    # held-only is far ahead on the held-out images alone: the choice must not see them.
                    bonus = 0.3 if method == held_only and index % 3 else 0.0
                    out.writerow([name, method, 0, index, f"im{index}", level + bonus + noise[method],
                                  0.1 if method == quick else 0.2])
    report = tmp_path / "choice.json"

    def run(*extra):
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "choose_method.py"), str(path), *extra,
                               "--json", str(report)], capture_output=True, text=True, env=subprocess_env(), timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(report.read_text())

    plain = run()
    assert plain["chosen"] == lopsided  # best mean over the sets' selection subsets
    careful = run("--incumbent", base, "--no-loss")
    assert careful["chosen"] == steady
    assert careful["held_out"]["a"]["difference"] == pytest.approx(5, abs=0.5)
    # Without b, lopsided trails on a and steady leads; without a, lopsided wins b with no loss there.
    folds = careful["leave_one_kind_out_scores"]
    assert folds["b"]["chosen"] == steady
    assert folds["a"]["chosen"] == lopsided
    assert folds["a"]["difference"] == pytest.approx(-10, abs=0.5)
    # Each fold's settings as bench/leave_one_kind_out.py --fold-overrides reads them: the brackets.
    assert careful["leave_one_kind_out"] == {"a": {}, "b": {"consensus": [4, 6, 8]}}
    # A tie goes to the faster method; a clear lead does not (lopsided wins b's fold alone, at any cost).
    faster = run("--incumbent", base, "--no-loss", "--prefer-faster")
    assert faster["chosen"] == quick and faster["leave_one_kind_out_scores"]["a"]["chosen"] == lopsided
    missing = subprocess.run([sys.executable, str(ROOT / "bench" / "choose_method.py"), str(path), "--incumbent", "nope"],
                             capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert missing.returncode != 0 and "not among the run's methods" in missing.stderr


def test_the_barrier_cue_marks_a_walled_off_block_and_not_a_smooth_gradient():
    """bench/cell_cue_probe.py's minimum barrier distance from the border: 0 on the border, high
    on a block one clear step of colour away from everything around it, low along a gradient that
    shades smoothly across the frame (each path from the border climbs only a little)."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    from cell_cue_probe import barrier_from_border

    grid = np.zeros((16, 16, 3))
    grid[:, :, 0] = np.linspace(0, 50, 16)[None, :]  # a horizontal gradient: each column reaches the top border level
    grid[6:10, 6:10] += (0, 60, 0)                      # a block behind one step of 60
    barrier = barrier_from_border(grid)
    assert barrier.shape == (16, 16) and barrier.max() == 1.0
    assert np.all(barrier[0] == 0) and np.all(barrier[:, 0] == 0)
    assert barrier[6:10, 6:10].min() > 0.9 and np.delete(barrier.ravel(), np.ravel_multi_index(
        np.mgrid[6:10, 6:10].reshape(2, -1), (16, 16))).max() < 0.1


def test_side_flip_learns_which_masks_are_on_the_wrong_side():
    """bench/side_flip.py's check: a logistic fit, each set weighing the same, that calls a mask
    inverted where a feature says so, and not where only noise differs."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench"))
    from side_flip import fitted_check

    rng = np.random.default_rng(0)
    names = np.array(["a"] * 300 + ["b"] * 60)
    wrong = rng.random(360) < 0.3
    features = np.stack([wrong * 2.0 + rng.normal(0, 0.5, 360), rng.normal(size=360)], axis=1)
    check = fitted_check(names, features, wrong, np.ones(360, bool))
    p = check(np.array([[2.0, 0.0], [0.0, 0.0], [0.0, 3.0]]))
    assert p[0] > 0.9 and p[1] < 0.1 and p[2] < 0.2
