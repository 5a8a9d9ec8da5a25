"""The cluster scorer: its cues, fitting, the JSON it ships as, and the rule that uses it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segtool.pipeline.foreground.cues import CUE_NAMES, GEODESIC_CUE, SALIENCY_CUE, cluster_cues
from segtool.pipeline.foreground.scorer import ClusterScorer, TreeScorer, fit_scorer, fit_tree_scorer, load_scorer, shipped_scorers
from segtool.errors import SegtoolError
from segtool.pipeline.foreground.rules import select_foreground

from conftest import subprocess_env

REPO = Path(__file__).resolve().parents[1]


def square_scene(n: int = 16, size: int = 6, seed: int = 0):
    """Labels and features of a distinct centred square on a plain background."""
    labels = np.zeros((n, n), int)
    start = (n - size) // 2
    labels[start:start + size, start:start + size] = 1
    features = np.random.default_rng(seed).normal(0, 0.1, (n, n, 5))
    features[labels == 1] += 2.0
    return labels, features


def test_cues_tell_a_centred_object_from_its_background():
    labels, features = square_scene()
    cues, ids = cluster_cues(labels, features)
    assert ids == [0, 1] and cues.shape == (2, len(CUE_NAMES))
    by = {name: dict(zip(ids, cues[:, j])) for j, name in enumerate(CUE_NAMES)}
    assert by["boundary_connectivity"][1] == 0 and by["border_share"][1] == 0
    assert by["border_share"][0] == pytest.approx(1.0)
    assert by["size"][1] == pytest.approx(36 / 256)
    assert by["centre_distance"][1] < by["centre_distance"][0]
    assert by["contrast_to_border"][1] > 1.5 > by["contrast_to_border"][0]
    assert by["vertical_offset"][1] == pytest.approx(0.5 / 16) == by["horizontal_offset"][1]


def test_cues_reject_a_feature_grid_of_another_shape():
    labels, features = square_scene()
    with pytest.raises(ValueError, match="16x16"):
        cluster_cues(labels, features[:8])
    with pytest.raises(ValueError, match="saliency grid is 8x16"):
        cluster_cues(labels, features, np.zeros((8, 16)))


def test_a_saliency_grid_adds_each_clusters_mean_saliency_as_a_tenth_cue():
    labels, features = square_scene()
    saliency = np.where(labels == 1, 0.9, 0.2)
    saliency[0, 0] = 0.0  # one background cell less salient: the cue is a mean over the cluster
    nine, _ = cluster_cues(labels, features)
    ten, ids = cluster_cues(labels, features, saliency)
    assert ten.shape == (2, len(CUE_NAMES) + 1) and np.array_equal(ten[:, :-1], nine)
    assert ten[ids.index(1), -1] == pytest.approx(0.9)
    assert ten[ids.index(0), -1] == pytest.approx((0.2 * 219) / 220)


def object_saliency(labels: np.ndarray) -> np.ndarray:
    """A saliency grid that agrees with the scene: high on the object (label 1), low elsewhere."""
    return np.where(labels == 1, 0.8, 0.3)


def scene_rows(count: int = 12, saliency: bool = False):
    rows, fractions, cells = [], [], []
    for seed in range(count):
        size = 4 + seed % 6
        labels, features = square_scene(size=size, seed=seed)
        cues, ids = cluster_cues(labels, features, object_saliency(labels) if saliency else None)
        rows.append(cues)
        fractions += [0.0, 1.0]
        cells += [int((labels == c).sum()) for c in ids]
    return np.concatenate(rows), np.array(fractions), np.array(cells)


def test_fit_scorer_learns_to_call_the_square_object(tmp_path):
    cues, fractions, cells = scene_rows()
    scorer = fit_scorer(cues, fractions, cells, {"images": 12})
    p = scorer.probability(cues)
    assert np.all(p[fractions == 1] > 0.5) and np.all(p[fractions == 0] < 0.5)
    path = tmp_path / "s.json"
    scorer.save(path)
    again = load_scorer(str(path))
    assert np.allclose(again.probability(cues), p) and again.provenance == {"images": 12}
    with pytest.raises(ValueError, match="both kinds"):
        fit_scorer(cues, np.zeros(len(cues)), cells)
    with pytest.raises(ValueError, match="expected 9 or 10 or 11"):
        fit_scorer(cues[:, :4], fractions, cells)


def test_tree_scorer_matches_scikit_learn_and_survives_its_json(tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    cues = rng.normal(size=(2000, len(CUE_NAMES) + 2))
    # A rule a logistic regression cannot draw: object in a band of one cue, only where another is high.
    fractions = ((np.abs(cues[:, 0]) < 0.7) & (cues[:, 3] > -0.5)).astype(float)
    cells = rng.integers(1, 40, len(cues))
    scorer = fit_tree_scorer(cues, fractions, cells, {"images": 7}, depth=2, trees=60)
    reference = HistGradientBoostingClassifier(max_depth=2, max_iter=60, learning_rate=0.05, early_stopping=False,
                                               random_state=0).fit(cues, fractions > 0.5, sample_weight=cells)
    assert np.allclose(scorer.probability(cues), reference.predict_proba(cues)[:, 1], atol=1e-12)
    assert scorer.uses_saliency and scorer.uses_geodesic and len(scorer.trees) == 60
    linear = fit_scorer(cues, fractions, cells)
    accuracy = {name: np.mean((s.probability(cues) > 0.5) == (fractions > 0.5)) for name, s in
                (("trees", scorer), ("logistic", linear))}
    assert accuracy["trees"] > accuracy["logistic"] + 0.1
    path = tmp_path / "trees.json"
    scorer.save(path)
    again = load_scorer(str(path))
    assert isinstance(again, TreeScorer) and again.provenance["images"] == 7
    assert np.array_equal(again.probability(cues), scorer.probability(cues))
    with pytest.raises(ValueError, match="both kinds"):
        fit_tree_scorer(cues, np.zeros(len(cues)), cells)


def test_a_tree_scorer_picks_the_square_in_the_pipelines_rule(tmp_path):
    cues, fractions, cells = scene_rows(count=60, saliency=True)  # a leaf holds at least 20 clusters
    path = tmp_path / "trees.json"
    fit_tree_scorer(cues, fractions, cells, depth=2, trees=30).save(path)
    labels, features = square_scene(size=8)
    choice = select_foreground(labels, "scored", features=features, scorer=str(path),
                               saliency=object_saliency(labels))
    assert choice.foreground_clusters == [1]


def tree_file(tmp_path, **changes) -> Path:
    tree = {"feature": [0, -1, -1], "threshold": [0.5, 0.0, 0.0], "left": [1, 0, 0], "right": [2, 0, 0],
            "value": [0.0, -1.0, 1.0]}
    data = {"cues": list(CUE_NAMES), "baseline": 0.0, "trees": [tree]}
    for key, value in changes.items():
        if key in tree:
            tree[key] = value
        else:
            data[key] = value
    path = tmp_path / "trees.json"
    path.write_text(json.dumps(data))
    return path


def test_a_hand_written_tree_sends_each_cluster_down_the_right_branch(tmp_path):
    scorer = load_scorer(str(tree_file(tmp_path)))
    cues = np.zeros((3, len(CUE_NAMES)))
    cues[:, 0] = [0.2, 0.5, 0.9]  # at most the threshold goes left (value -1), above it right (+1)
    assert np.allclose(scorer.probability(cues), 1 / (1 + np.exp(-np.array([-1.0, -1.0, 1.0]))))


@pytest.mark.parametrize("changes, expected", [
    ({"feature": [len(CUE_NAMES), -1, -1]}, "outside 0-8"),
    ({"left": [0, 0, 0]}, "children must be later nodes"),
    ({"right": [5, 0, 0]}, "children must be later nodes"),
    ({"value": [0.0, "x", 1.0]}, "finite numbers"),
    ({"feature": [0.5, -1, -1]}, "whole numbers"),
    ({"threshold": [0.5, 0.0]}, "lists of one length"),
    ({"trees": []}, "non-empty list"),
    ({"baseline": None}, "'baseline' must be a finite number"),
    ({"extra": 1}, "unknown key"),
])
def test_bad_tree_scorer_files_give_one_line_errors(tmp_path, changes, expected):
    with pytest.raises(SegtoolError, match=expected) as info:
        load_scorer(str(tree_file(tmp_path, **changes)))
    assert "\n" not in str(info.value)


def test_a_scorer_that_weighs_saliency_needs_the_saliency_grid(tmp_path):
    cues, fractions, cells = scene_rows(saliency=True)
    scorer = fit_scorer(cues, fractions, cells)
    assert scorer.cues == [*CUE_NAMES, SALIENCY_CUE] and scorer.uses_saliency
    assert not fit_scorer(cues[:, :-1], fractions, cells).uses_saliency
    path = tmp_path / "ten.json"
    scorer.save(path)
    labels, features = square_scene(size=8)
    with pytest.raises(ValueError, match="weighs saliency"):
        select_foreground(labels, "scored", features=features, scorer=str(path))
    choice = select_foreground(labels, "scored", features=features, scorer=str(path), saliency=object_saliency(labels))
    assert choice.foreground_clusters == [1]


PHOTOS = {"photos-unlabelled (pseudo-labels)": 646}
KINDS = {"oxford17-flowers-seg": 282, "ecssd-dev": 167, "isic-lesions-128": 267, **PHOTOS}


@pytest.mark.parametrize("name, images", [("scvae", KINDS), ("colour-pipeline", KINDS), ("scvae-unlabelled", PHOTOS),
                                          ("scvae-logistic", KINDS), ("colour-pipeline-logistic", KINDS),
                                          ("scvae-flowers", 282), ("colour-pipeline-flowers", 282)])
def test_shipped_scorers_load_and_pick_an_obvious_object(name, images):
    assert name in shipped_scorers()
    scorer = load_scorer(name)
    # Fit on the selection subsets only (the defaults on three kinds of images and pseudo-labelled
    # photos, the -flowers ones on Oxford-17), or on no masks at all (-unlabelled).
    assert scorer.provenance["stride"] == 3 and scorer.provenance["images"] == images
    # The -flowers ones are the nine-cue scorers of before; the others weigh the image's saliency
    # and the geodesic objectness of its colour too.
    assert scorer.uses_saliency == scorer.uses_geodesic == (not name.endswith("-flowers"))
    # The defaults are boosted trees; the regressions they replaced ship beside them as -logistic.
    assert isinstance(scorer, TreeScorer) == (name in ("scvae", "colour-pipeline"))
    labels, features = square_scene(size=8)
    choice = select_foreground(labels, "scored", features=features, scorer=name, saliency=object_saliency(labels),
                               geodesic=object_saliency(labels))
    assert choice.foreground_clusters == [1]
    assert choice.cluster_scores[1] < 0.5 < choice.cluster_scores[0]


def test_scored_rule_needs_features_and_never_gives_an_empty_or_full_mask():
    labels, features = square_scene()
    with pytest.raises(ValueError, match="feature grid"):
        select_foreground(labels, "scored")
    halves = np.zeros((12, 12), int)
    halves[:, 6:] = 1
    flat = np.random.default_rng(1).normal(0, 1, (12, 12, 3))
    flat_saliency = np.full((12, 12), 0.5)
    assert 0 < select_foreground(halves, "scored", features=flat, saliency=flat_saliency,
                                 geodesic=flat_saliency).mask.mean() < 1
    assert 0 < select_foreground(labels, "scored", threshold=1e9, features=features,
                                 saliency=object_saliency(labels), geodesic=object_saliency(labels)).mask.mean() < 1


@pytest.mark.parametrize("content, expected", [
    (None, "not a file, and not a shipped cluster scorer"),
    ("{not json", "not a valid scorer file"),
    (json.dumps({"cues": ["x"], "mean": [0], "scale": [1], "coef": [1], "intercept": 0}), "this version computes"),
    (json.dumps({"cues": [SALIENCY_CUE, *CUE_NAMES], "mean": [0] * 10, "scale": [1] * 10, "coef": [1] * 10,
                 "intercept": 0}), "optionally followed by 'saliency'"),
    (json.dumps({"cues": list(CUE_NAMES), "mean": [0] * 9, "scale": [0] * 9, "coef": [1] * 9, "intercept": 0}),
     "positive"),
    ('{"cues": %s, "mean": %s, "scale": %s, "coef": %s, "intercept": NaN}'
     % (json.dumps(list(CUE_NAMES)), [0] * 9, [1] * 9, [1] * 9), "'intercept' must be a finite number"),
    ('{"cues": %s, "mean": %s, "scale": %s, "coef": %s, "intercept": Infinity}'
     % (json.dumps(list(CUE_NAMES)), [0] * 9, [1] * 9, [1] * 9), "'intercept' must be a finite number"),
    (json.dumps({"cues": list(CUE_NAMES), "mean": [0] * 9, "scale": [1] * 9, "coef": [1] * 9, "intercept": "abc"}),
     "'intercept' must be a finite number"),
    (json.dumps({"cues": list(CUE_NAMES), "mean": [0] * 9, "scale": [1] * 9, "coef": ["a"] * 9, "intercept": 0}),
     "'coef' must be a list of 9 finite numbers"),
    (json.dumps([1, 2]), "expected a JSON object"),
])
def test_bad_scorer_files_give_one_line_errors(content, expected, tmp_path):
    path = tmp_path / "scorer.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SegtoolError, match=expected) as info:
        load_scorer(str(path))
    assert "\n" not in str(info.value)


def test_a_missing_scorer_is_a_one_line_error_and_writes_nothing(tmp_path, capsys):
    from conftest import run_cli

    data = synthetic_folder(tmp_path / "set", count=2)
    code, _, err = run_cli(capsys, "eval", f"folder:{data}", "--methods",
                           f"colour-pipeline[scorer={tmp_path / 'none.json'}]", "--out", tmp_path / "out")
    assert code != 0 and "cluster scorer" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "results.csv").exists()


def synthetic_folder(root: Path, count: int = 6) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        image = rng.integers(0, 60, (96, 96, 3), dtype=np.uint8)
        mask = np.zeros((96, 96), np.uint8)
        r = 20 + 3 * i
        yy, xx = np.mgrid[0:96, 0:96]
        mask[(yy - 48) ** 2 + (xx - 48) ** 2 < r * r] = 255
        image[mask > 0] = (200, 60 + 10 * i, 40)
        Image.fromarray(image).save(root / "images" / f"im{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"im{i}.png")
    return root


def test_fit_script_writes_a_loadable_scorer_and_keeps_an_existing_file(tmp_path):
    data = synthetic_folder(tmp_path / "set")
    out = tmp_path / "fitted.json"
    argv = [sys.executable, str(REPO / "bench" / "fit_cluster_scorer.py"), f"folder:{data}", "--method",
            "colour-pipeline", "--stride", "1", "--ks", "2,3", "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    scorer = load_scorer(str(out))
    assert scorer.provenance["images"] == {"set": 6} and scorer.provenance["ks"] == [2, 3]
    assert scorer.cues == [*CUE_NAMES, SALIENCY_CUE, GEODESIC_CUE] and scorer.uses_geodesic
    before = out.read_text()
    again = subprocess.run(argv, capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert again.returncode != 0 and "--force" in again.stderr and out.read_text() == before
    without_out = argv[:argv.index("--out")]
    for flags, cues in ((["--no-geodesic-cue"], [*CUE_NAMES, SALIENCY_CUE]),
                        (["--no-saliency-cue", "--no-geodesic-cue"], list(CUE_NAMES))):
        fewer = tmp_path / f"{len(cues)}.json"
        done = subprocess.run(without_out + ["--out", str(fewer), *flags], capture_output=True, text=True,
                              env=subprocess_env(), timeout=300)
        assert done.returncode == 0, done.stderr
        assert load_scorer(str(fewer)).cues == cues
    done = subprocess.run(without_out + ["--out", str(tmp_path / "x.json"), "--no-saliency-cue"], capture_output=True,
                          text=True, env=subprocess_env(), timeout=300)
    assert done.returncode != 0 and "after the saliency cue" in done.stderr


def test_a_fit_over_several_sets_weighs_each_set_the_same():
    """A set of 3 images must count as much as a set of 300: no one kind of image decides the scorer."""
    sys.path.insert(0, str(REPO / "bench"))
    from fit_cluster_scorer import balanced_fit

    rng = np.random.default_rng(0)

    def rows(n, sign):
        # Cue 0 separates object from background, in opposite directions in the two sets.
        fractions = rng.random(n) > 0.5
        cues = rng.normal(0, 0.1, (n, len(CUE_NAMES) + 2))  # the nine cues, saliency and geodesic
        cues[:, 0] += sign * np.where(fractions, 1.0, -1.0)
        return {"cues": cues, "fractions": fractions.astype(float), "cells": np.full(n, 10), "image": np.arange(n)}

    big, small = rows(3000, +1), rows(30, -1)
    balanced = balanced_fit({"big": big, "small": small}, {})
    plain = balanced_fit({"all": {k: np.concatenate([big[k], small[k]]) for k in big}}, {})
    # Equal weights: the two directions cancel; pooled rows: the big set's direction wins.
    assert abs(balanced.coef[0]) < 0.25 * abs(plain.coef[0]) and plain.coef[0] > 0
    assert len(balanced.cues) == 11 and len(balanced_fit({"big": big}, {}, geodesic_cue=False).cues) == 10
    assert len(balanced_fit({"big": big}, {}, saliency_cue=False, geodesic_cue=False).cues) == 9
    with pytest.raises(ValueError, match="big: rows of 10 cues"):
        balanced_fit({"big": {**big, "cues": big["cues"][:, :10]}}, {})
    with pytest.raises(ValueError, match="after the saliency cue"):
        balanced_fit({"big": big}, {}, saliency_cue=False)


@pytest.mark.parametrize("method, consensus, k, refine, rule, saliency, cut", [
    ("colour-pipeline", (6, 8, 12), 4, "none", "scored", 0.4, "otsu"),                     # the default
    ("colour-pipeline[rule=simple]", (2, 3, 4), 4, "grabcut", "simple", 0.0, 0.5),         # the label-free default
    ("colour-pipeline[rule=simple,k=3]", (), 3, "grabcut", "simple", 0.0, 0.5),
    ("colour-pipeline[rule=geodesic,refine=none]", (2, 3, 4), 4, "none", "geodesic", 0.0, 0.5),
    ("colour-pipeline[rule=simple,saliency_weight=0.3]", (2, 3, 4), 4, "grabcut", "simple", 0.3, 0.5),
    ("colour-pipeline[rule=simple,mask_cut=OTSU]", (2, 3, 4), 4, "grabcut", "simple", 0.0, "otsu"),
    ("colour-pipeline[k=2,mask_cut=0.4]", (), 2, "none", "scored", 0.4, 0.4),
])
def test_each_rule_brings_its_measured_settings_unless_told_otherwise(method, consensus, k, refine, rule, saliency, cut):
    # A label-free rule takes nothing chosen on labelled images: the saliency vote's weight, the cut.
    from segtool.pipeline.registry import build_segmenter, parse_method

    cfg = build_segmenter(parse_method(method)).cfg
    assert (cfg.consensus, cfg.k, cfg.refine, cfg.rule, cfg.saliency_weight, cfg.mask_cut) == \
        (consensus, k, refine, rule, saliency, cut)


def test_rule_option_reaches_the_pipeline_and_bad_rules_are_usage_errors(tmp_path, capsys):
    from segtool.pipeline.registry import MethodSpec, build_segmenter
    from segtool.cli.options import pipeline_options

    cfg = build_segmenter(MethodSpec("colour-pipeline"), cli=pipeline_options(None, None, None, "simple")).cfg
    assert (cfg.rule, cfg.consensus, cfg.refine) == ("simple", (2, 3, 4), "grabcut")
    from conftest import run_cli

    data = synthetic_folder(tmp_path / "set", count=1)
    code, _, err = run_cli(capsys, "eval", f"folder:{data}", "--methods", "colour-pipeline", "--rule", "magic",
                           "--out", tmp_path / "out")
    assert code == 2 and "--rule 'magic'" in err and "scored" in err


def test_the_pipeline_computes_an_images_rbd_once_for_the_cue_and_the_blend_and_only_when_needed(monkeypatch):
    import segtool.pipeline.saliency as saliency
    from segtool.pipeline.registry import build_segmenter, parse_method

    calls = []
    real = saliency.rbd  # what the pipeline runs on the image's cue copy (here the image itself: it is small)
    monkeypatch.setattr(saliency, "rbd", lambda image: calls.append(image.shape) or real(image))
    image = np.full((96, 128, 3), (40, 90, 40), np.uint8)
    yy, xx = np.mgrid[0:96, 0:128]
    image[(yy - 48) ** 2 + (xx - 64) ** 2 < 30 ** 2] = (220, 200, 30)
    default = build_segmenter(parse_method("colour-pipeline"))  # the shipped scorer weighs saliency; blend 0.5
    assert default.scorer_uses_saliency and default.cfg.saliency_weight > 0
    mask = default.segment(image).mask
    assert calls == [(96, 128, 3)]
    assert mask[48, 64] and not mask[5, 5] and not mask[90, 120]
    calls.clear()
    build_segmenter(parse_method("colour-pipeline[scorer=colour-pipeline-flowers,saliency_weight=0]")).segment(image)
    assert calls == []  # a nine-cue scorer and no blend: no saliency computed
    with pytest.raises(ValueError, match="weighs saliency"):
        default.vote(default.feature_grids([image])[0])


def test_pseudo_labels_are_known_only_where_the_label_free_vote_and_saliency_agree():
    sys.path.insert(0, str(REPO / "bench"))
    from pseudo_labels import pseudo_labels

    labels, _ = square_scene(n=12, size=6)          # a centred square: the simple rule's object
    clusterings = {k: (labels, None, [0, 1]) for k in (2, 3, 4)}
    saliency = np.zeros((12, 12))
    saliency[3:9, 3:6] = 0.9                         # saliency finds the square's left half ...
    saliency[0, :] = 0.8                             # ... and a strip of the border
    obj, known = pseudo_labels(clusterings, saliency)
    assert obj.sum() == 18 and obj[3:9, 3:6].all()
    assert not known[3:9, 6:9].any() and not known[0].any()
    assert known.sum() == 144 - 18 - 12


def test_a_scorer_fit_without_masks_on_pseudo_labelled_photos_finds_an_obvious_object(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:96]
    for i in range(8):
        image = rng.integers(20, 80, (96, 96, 3), dtype=np.uint8)
        r, cy, cx = 14 + 2 * i, 48 + (i % 3) * 4 - 4, 48 - (i % 2) * 6
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = (210, 40 + 20 * i, 30)
        Image.fromarray(image).save(photos / f"p{i}.png")
    out = tmp_path / "pseudo.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "fit_cluster_scorer.py"), "--unlabelled", str(photos),
                           "--unlabelled-stride", "1", "--method", "colour-pipeline", "--out", str(out)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    scorer = load_scorer(str(out))
    assert scorer.uses_saliency and scorer.provenance["images"] == {"photos (pseudo-labels)": 8}
    assert "agree" in scorer.provenance["pseudo_labels"]
    labels, features = square_scene(size=8)
    choice = select_foreground(labels, "scored", features=features, scorer=str(out), saliency=object_saliency(labels),
                               geodesic=object_saliency(labels))
    assert choice.foreground_clusters == [1]
    # Rows from finer clusterings only: the pseudo-labels still come from the label-free vote at
    # k = 2, 3, 4, which are clustered for the labels but give no rows.
    fine = tmp_path / "fine.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "fit_cluster_scorer.py"), "--unlabelled", str(photos),
                           "--unlabelled-stride", "1", "--method", "colour-pipeline", "--ks", "6,8", "--out", str(fine)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    provenance = load_scorer(str(fine)).provenance
    assert provenance["ks"] == [6, 8] and 0 < provenance["clusters"] <= 8 * (6 + 8)  # k = 2, 3, 4 would add 72


def test_leave_one_kind_out_leaves_each_labelled_set_out_and_keeps_unlabelled_photos_in_every_fit(tmp_path):
    a, b = synthetic_folder(tmp_path / "a"), synthetic_folder(tmp_path / "b", count=9)
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in sorted((a / "images").iterdir())[:4]:
        (photos / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "loko"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "leave_one_kind_out.py"), f"folder:{a}", f"folder:{b}",
                           "--unlabelled", str(photos), "--unlabelled-stride", "1", "--method", "colour-pipeline",
                           "--ks", "2,3,4", "--limit", "2", "--out", str(out)],
                          capture_output=True, text=True, env=subprocess_env(), timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "loko.json").read_text())
    assert [r["set"] for r in report["sets"]] == ["a", "b"]
    assert all(0 <= r["leave_one_kind_out"] <= 1 and r["images"] == 2 for r in report["sets"])
    without_a = load_scorer(str(out / "scorer-without-a.json")).provenance
    assert without_a["datasets"] == ["b", "photos (pseudo-labels)"]
    assert load_scorer(str(out / "scorer-all.json")).provenance["datasets"] == ["a", "b", "photos (pseudo-labels)"]
