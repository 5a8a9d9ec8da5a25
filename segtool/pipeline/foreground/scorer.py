"""The cluster scorer: how likely a cluster is to be object, from its cues (segtool.pipeline.foreground.cues).

A logistic regression over the standardised cues, stored as JSON under segtool/scorers/: the
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


@dataclass
class ClusterScorer:
    cues: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.cues, (list, tuple)) or tuple(self.cues) not in CUE_SETS:
            raise ValueError(f"the scorer weighs cues {self.cues}, but this version computes "
                             f"{list(CUE_NAMES)}, optionally followed by {SALIENCY_CUE!r} and then {GEODESIC_CUE!r}")
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

    @property
    def uses_saliency(self) -> bool:
        return SALIENCY_CUE in self.cues

    @property
    def uses_geodesic(self) -> bool:
        return GEODESIC_CUE in self.cues

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

    names = next((names for names in CUE_SETS if len(names) == np.shape(cues)[1]), None)
    if names is None:
        raise ValueError(f"cue rows have {np.shape(cues)[1]} columns; expected {' or '.join(str(len(n)) for n in CUE_SETS)}")
    target = np.asarray(object_fraction) > 0.5
    if target.all() or not target.any():
        raise ValueError("fitting needs clusters of both kinds: some mostly object, some mostly background")
    mean = cues.mean(axis=0)
    scale = cues.std(axis=0)
    scale[scale == 0] = 1.0  # a constant cue carries no information; keep it finite
    model = LogisticRegression(C=regularisation, max_iter=5000)
    model.fit((cues - mean) / scale, target, sample_weight=np.asarray(cells, dtype=np.float64))
    return ClusterScorer(list(names), mean.tolist(), scale.tolist(), model.coef_[0].tolist(),
                         float(model.intercept_[0]), provenance or {})


def shipped_scorers() -> list[str]:
    from segtool.resources import shipped_names

    return shipped_names("scorer")


def load_scorer(name_or_path: str) -> ClusterScorer:
    """A shipped scorer by name (`scvae`, `colour-pipeline`) or a JSON file written by
    `bench/fit_cluster_scorer.py` (segtool.resources). Bad input raises SegtoolError with a one-line reason."""
    from segtool.resources import read_resource

    text, _, _ = read_resource("scorer", name_or_path, SegtoolError)
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object with cues, mean, scale, coef and intercept")
        known = {"cues", "mean", "scale", "coef", "intercept", "provenance"}
        unknown = key_list(set(data) - known)
        missing = sorted(known - {"provenance"} - set(data))
        if unknown or missing:
            raise ValueError(f"unknown key(s) {unknown}" if unknown else f"missing {', '.join(missing)}")
        return ClusterScorer(**data)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise SegtoolError(f"cluster scorer {name_or_path!r} is not a valid scorer file: {exc}") from None


@lru_cache(maxsize=16)
def load_scorer_cached(name_or_path: str) -> ClusterScorer:
    """load_scorer, read once per process: the rule asks for it once per image and k."""
    return load_scorer(name_or_path)
