"""The cluster scorer: how likely a cluster is to be object, from its cues (segtool.pipeline.foreground.cues).

A logistic regression over the standardised cues (ClusterScorer), or boosted decision trees over
the raw cues (TreeScorer: the JSON has `trees`), stored as JSON under segtool/scorers/: the
nine cues of the feature grid, those nine and the RBD saliency cue (SALIENCY_CUE), or those ten
and the geodesic objectness cue (GEODESIC_CUE), as the JSON's `cues` list says. Scorers of every
kind load; one that weighs saliency (or the geodesic cue) makes the pipeline compute the image's
RBD saliency (or its geodesic grid) before it chooses clusters. It is fit once, offline, on the
masks of a selection subset, and optionally on pseudo-labelled photos without masks
(`bench/fit_cluster_scorer.py`; the JSON records the command, data and images); segmenting never
sees a mask. Each training row is one cluster of one image at one k, labelled object when most
of its cells are object in the ground truth, and weighted by its size, since a cluster's weight
in the IoU is its area.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from segtool.pipeline.foreground.cues import CUE_NAMES, GEODESIC_CUE, SALIENCY_CUE
from segtool.params import key_list
from segtool.errors import SegtoolError

# The cue lists a scorer may weigh, in column order.
CUE_SETS = (tuple(CUE_NAMES), tuple(CUE_NAMES) + (SALIENCY_CUE,), tuple(CUE_NAMES) + (SALIENCY_CUE, GEODESIC_CUE))


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def _check_cues(cues) -> None:
    if not isinstance(cues, (list, tuple)) or tuple(cues) not in CUE_SETS:
        raise ValueError(f"the scorer weighs cues {cues}, but this version computes "
                         f"{list(CUE_NAMES)}, optionally followed by {SALIENCY_CUE!r} and then {GEODESIC_CUE!r}")


class WeighsCues:
    """What the pipeline asks of any scorer before it chooses clusters: which pixel cues to compute."""
    cues: list[str]

    @property
    def uses_saliency(self) -> bool:
        return SALIENCY_CUE in self.cues

    @property
    def uses_geodesic(self) -> bool:
        return GEODESIC_CUE in self.cues


def training_rows(cues: np.ndarray, object_fraction: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """(the cue names the columns are, object or not per row) of a fit's rows, refused with a
    ValueError when the columns are no cue list or the rows hold one class only."""
    names = next((names for names in CUE_SETS if len(names) == np.shape(cues)[1]), None)
    if names is None:
        raise ValueError(f"cue rows have {np.shape(cues)[1]} columns; expected {' or '.join(str(len(n)) for n in CUE_SETS)}")
    target = np.asarray(object_fraction) > 0.5
    if target.all() or not target.any():
        raise ValueError("fitting needs clusters of both kinds: some mostly object, some mostly background")
    return names, target


@dataclass
class ClusterScorer(WeighsCues):
    cues: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_cues(self.cues)
        n = len(self.cues)
        for name in ("mean", "scale", "coef"):
            values = getattr(self, name)
            if (not isinstance(values, (list, tuple)) or len(values) != n
                    or not all(_is_finite_number(v) for v in values)):
                raise ValueError(f"'{name}' must be a list of {n} finite numbers")
        if not _is_finite_number(self.intercept):
            raise ValueError(f"'intercept' must be a finite number, got {self.intercept!r}")
        if not isinstance(self.provenance, dict):
            raise ValueError("'provenance' must be a mapping")
        if min(self.scale) <= 0:
            raise ValueError("'scale' must be positive")

    def probability(self, cues: np.ndarray) -> np.ndarray:
        """P(object) for each row of cues [clusters, len(self.cues)]."""
        z = (np.asarray(cues, dtype=np.float64) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")


def fit_scorer(cues: np.ndarray, object_fraction: np.ndarray, cells: np.ndarray, provenance: dict | None = None,
               regularisation: float = 1.0) -> ClusterScorer:
    """Fit the logistic regression on cluster rows: cues [n, 9] (CUE_NAMES) or [n, 10] (and
    SALIENCY_CUE), the fraction of each cluster's cells that are object [n], and its size in
    cells [n] (the sample weight)."""
    from sklearn.linear_model import LogisticRegression

    names, target = training_rows(cues, object_fraction)
    mean = cues.mean(axis=0)
    scale = cues.std(axis=0)
    scale[scale == 0] = 1.0  # a constant cue carries no information; keep it finite
    model = LogisticRegression(C=regularisation, max_iter=5000)
    model.fit((cues - mean) / scale, target, sample_weight=np.asarray(cells, dtype=np.float64))
    return ClusterScorer(list(names), mean.tolist(), scale.tolist(), model.coef_[0].tolist(),
                         float(model.intercept_[0]), provenance or {})


TREE_FIELDS = ("feature", "threshold", "left", "right", "value")


@dataclass
class TreeScorer(WeighsCues):
    """Gradient-boosted decision trees over the raw cues: P(object) = sigmoid(baseline + the sum
    over trees of the value of the leaf each cluster reaches). A tree is parallel lists over its
    nodes: `feature` (the cue's column, -1 at a leaf), `threshold` (go to `left` when the cue is
    at most this, else to `right`) and `value` (a leaf's contribution, the learning rate applied);
    node 0 is the root. Unlike a logistic regression, trees weigh cues together (a large cluster
    that is also salient) and never extrapolate past the cue values they were fit on."""
    cues: list[str]
    baseline: float
    trees: list[dict]
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_cues(self.cues)
        if not _is_finite_number(self.baseline):
            raise ValueError(f"'baseline' must be a finite number, got {self.baseline!r}")
        if not isinstance(self.trees, list) or not self.trees:
            raise ValueError("'trees' must be a non-empty list")
        if not isinstance(self.provenance, dict):
            raise ValueError("'provenance' must be a mapping")
        # Every tree padded to the longest, so that one step moves every cluster down every tree.
        arrays = [self._tree_arrays(i, tree) for i, tree in enumerate(self.trees)]
        longest = max(len(a[0]) for a in arrays)
        self._forest = [np.stack([np.pad(a[j], (0, longest - len(a[j])), constant_values=fill) for a in arrays])
                        for j, fill in enumerate((0, False, 0.0, 0, 0, 0.0))]

    def _tree_arrays(self, index: int, tree) -> tuple[np.ndarray, ...]:
        where = f"tree {index}"
        if not isinstance(tree, dict) or set(tree) != set(TREE_FIELDS):
            raise ValueError(f"{where}: expected the lists {', '.join(TREE_FIELDS)}")
        lengths = {len(tree[name]) if isinstance(tree[name], list) else -1 for name in TREE_FIELDS}
        if len(lengths) != 1 or lengths == {-1} or lengths == {0}:
            raise ValueError(f"{where}: {', '.join(TREE_FIELDS)} must be lists of one length")
        if not all(_is_finite_number(v) for name in ("threshold", "value") for v in tree[name]):
            raise ValueError(f"{where}: thresholds and values must be finite numbers")
        if not all(isinstance(v, int) and not isinstance(v, bool) for name in ("feature", "left", "right")
                   for v in tree[name]):
            raise ValueError(f"{where}: feature, left and right must be whole numbers")
        feature, left, right = (np.asarray(tree[name], dtype=np.int64) for name in ("feature", "left", "right"))
        n = len(feature)
        inner = feature >= 0
        if (feature >= len(self.cues)).any() or (feature < -1).any():
            raise ValueError(f"{where}: a node names a cue column outside 0-{len(self.cues) - 1}")
        # Children come after their parent, so that every path ends at a leaf.
        nodes = np.arange(n)
        if ((left[inner] <= nodes[inner]) | (right[inner] <= nodes[inner]) | (left[inner] >= n)
                | (right[inner] >= n)).any():
            raise ValueError(f"{where}: a node's children must be later nodes of the tree")
        return (np.where(inner, feature, 0), inner, np.asarray(tree["threshold"], dtype=np.float64),
                np.where(inner, left, nodes), np.where(inner, right, nodes), np.asarray(tree["value"], dtype=np.float64))

    def probability(self, cues: np.ndarray) -> np.ndarray:
        """P(object) for each row of cues [clusters, len(self.cues)]."""
        x = np.asarray(cues, dtype=np.float64)
        feature, inner, threshold, left, right, value = self._forest
        rows = np.arange(len(x))[:, None]
        tree = np.arange(len(feature))[None, :]
        node = np.zeros((len(x), len(feature)), dtype=np.int64)  # [cluster, tree]
        while inner[tree, node].any():  # a leaf points at itself, so finished paths stay put
            go_left = x[rows, feature[tree, node]] <= threshold[tree, node]
            node = np.where(go_left, left[tree, node], right[tree, node])
        raw = self.baseline + value[tree, node].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-raw))

    def save(self, path: str | Path) -> None:
        data = {"cues": self.cues, "baseline": self.baseline, "trees": self.trees, "provenance": self.provenance}
        Path(path).write_text(json.dumps(data) + "\n")  # about 60 kB: thousands of node values


def fit_tree_scorer(cues: np.ndarray, object_fraction: np.ndarray, cells: np.ndarray, provenance: dict | None = None,
                    depth: int = 2, trees: int = 200, learning_rate: float = 0.05) -> TreeScorer:
    """Fit gradient-boosted trees on cluster rows, as fit_scorer fits its regression (the same
    rows, labels and weights), and keep them as a TreeScorer. scikit-learn's trees are read out
    node by node, so segmenting needs no scikit-learn."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    names, target = training_rows(cues, object_fraction)
    model = HistGradientBoostingClassifier(max_depth=depth, max_iter=trees, learning_rate=learning_rate,
                                           early_stopping=False, random_state=0)
    model.fit(np.asarray(cues, dtype=np.float64), target, sample_weight=np.asarray(cells, dtype=np.float64))
    exported = []
    for (predictor,) in model._predictors:  # one tree per boosting round (binary: one per round)
        nodes = predictor.nodes
        leaf = nodes["is_leaf"].astype(bool)
        exported.append({"feature": np.where(leaf, -1, nodes["feature_idx"]).astype(int).tolist(),
                         "threshold": np.where(leaf, 0.0, nodes["num_threshold"]).astype(float).tolist(),
                         "left": np.where(leaf, 0, nodes["left"]).astype(int).tolist(),
                         "right": np.where(leaf, 0, nodes["right"]).astype(int).tolist(),
                         "value": np.where(leaf, nodes["value"], 0.0).astype(float).tolist()})
    info = {**(provenance or {}), "model": f"gradient-boosted trees: {trees} of depth {depth}, "
                                           f"learning rate {learning_rate}"}
    return TreeScorer(list(names), float(np.ravel(model._baseline_prediction)[0]), exported, info)


def shipped_scorers() -> list[str]:
    from segtool.resources import shipped_names

    return shipped_names("scorer")


def load_scorer(name_or_path: str) -> "ClusterScorer | TreeScorer":
    """A shipped scorer by name (`scvae`, `colour-pipeline`) or a JSON file written by
    `bench/fit_cluster_scorer.py` (segtool.resources). Bad input raises SegtoolError with a one-line reason."""
    from segtool.resources import read_resource

    text, _, _ = read_resource("scorer", name_or_path, SegtoolError)
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object with cues, mean, scale, coef and intercept (or cues, baseline "
                             "and trees)")
        kind = TreeScorer if "trees" in data else ClusterScorer
        known = {"cues", "provenance", *(("baseline", "trees") if kind is TreeScorer
                                         else ("mean", "scale", "coef", "intercept"))}
        unknown = key_list(set(data) - known)
        missing = sorted(known - {"provenance"} - set(data))
        if unknown or missing:
            raise ValueError(f"unknown key(s) {unknown}" if unknown else f"missing {', '.join(missing)}")
        return kind(**data)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise SegtoolError(f"cluster scorer {name_or_path!r} is not a valid scorer file: {exc}") from None


@lru_cache(maxsize=16)
def load_scorer_cached(name_or_path: str) -> "ClusterScorer | TreeScorer":
    """load_scorer, read once per process: the rule asks for it once per image and k."""
    return load_scorer(name_or_path)
