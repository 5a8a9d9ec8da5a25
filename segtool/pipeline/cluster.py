"""Clustering the feature vectors of one image's grid cells: K-means and spectral.

Spectral clustering uses an affinity that works on high-dimensional codes: sklearn's default
rbf gamma = 1 gives a disconnected graph on 512-dim codes, so `rbf` scales gamma by the
median squared pairwise distance; `knn` and `cosine` are offered too. For several k the
spectral embedding is computed once and discretised per k (cluster_qr, as sklearn does).
"""

from __future__ import annotations

import numpy as np

from segtool.settings import AFFINITIES



def principal_projection(features: np.ndarray, keep_variance: float = 0.99) -> np.ndarray:
    """Features [N, C] -> their coordinates [N, r] on the fewest principal axes that keep
    `keep_variance` of the variance (1: the features as they are, in float64).

    Clustering cost grows with C; SC-VAE grids (256 atoms + colour + position) keep 99% of their
    variance in about 50 components, so K-means runs about four times faster on nearly the same
    distances. The projection is returned in float32 (K-means computes in float64)."""
    x = features.astype(np.float64)
    if keep_variance >= 1.0:
        return x
    centred = x - x.mean(axis=0, keepdims=True)
    # The principal axes from the C x C scatter matrix (eigh) rather than an SVD of the N x C cells:
    # the same axes, a fifth of the time for a 1024 x 261 grid.
    variances, axes = np.linalg.eigh(centred.T @ centred)
    variances, axes = np.maximum(variances[::-1], 0.0), axes[:, ::-1]
    energy = np.cumsum(variances)
    if energy[-1] <= 0:
        return centred[:, :1].astype(np.float32)  # a flat image: every cell the same
    r = int(np.searchsorted(energy / energy[-1], keep_variance)) + 1
    return (centred @ axes[:, :r]).astype(np.float32)


def kmeans_labels(features: np.ndarray, k: int, seed: int = 0, n_init: int = 4, max_iter: int = 300,
                  tol: float = 1e-4) -> np.ndarray:
    """K-means (greedy k-means++ seeding, Lloyd iterations, the best of `n_init` runs by inertia),
    the algorithm and stopping rule of sklearn's KMeans, in numpy.

    Written here rather than called from sklearn because importing sklearn (which imports
    scipy.stats) costs about a second, more than segmenting a photo: the command line's cold
    start is most of a single image's time. The grids clustered here are small (about 1,000
    cells of a few dozen dimensions), where numpy is as fast as sklearn's compiled loops."""
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if k > len(features):
        raise ValueError(f"k = {k} is larger than the number of grid cells ({len(features)})")
    x = np.asarray(features, dtype=np.float64)
    rng = np.random.default_rng(seed)
    # sklearn's tolerance: relative to the data's mean variance per dimension.
    threshold = tol * float(np.mean(np.var(x, axis=0)))
    norms = (x * x).sum(axis=1)  # every distance below reuses the cells' squared norms
    best_labels, best_inertia = None, np.inf
    for _ in range(n_init):
        labels, inertia = _lloyd(x, _kmeans_plusplus(x, k, rng, norms), max_iter, threshold, norms)
        if inertia < best_inertia:
            best_labels, best_inertia = labels, inertia
    return _relabel_by_first_appearance(best_labels)


def _squared_distances(x: np.ndarray, centres: np.ndarray, x_norms: np.ndarray) -> np.ndarray:
    d2 = x @ centres.T
    d2 *= -2.0
    d2 += x_norms[:, None]
    d2 += (centres * centres).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0, out=d2)


def _kmeans_plusplus(x: np.ndarray, k: int, rng: np.random.Generator, norms: np.ndarray) -> np.ndarray:
    """Greedy k-means++ (Arthur and Vassilvitskii 2007, as sklearn does it): each new centre is the
    best of 2 + log(k) candidates drawn with probability proportional to squared distance."""
    n = len(x)
    trials = 2 + int(np.log(k))
    centres = [x[rng.integers(n)]]
    closest = _squared_distances(x, centres[0][None, :], norms)[:, 0]
    potential = closest.sum()
    for _ in range(1, k):
        if potential <= 0:  # every cell on a centre already: any cell will do
            centres.append(x[rng.integers(n)])
            continue
        picks = np.searchsorted(np.cumsum(closest), rng.random(trials) * potential)
        picks = np.minimum(picks, n - 1)
        candidate = np.minimum(closest[None, :], _squared_distances(x, x[picks], norms).T)
        potentials = candidate.sum(axis=1)
        best = int(np.argmin(potentials))
        closest, potential = candidate[best], potentials[best]
        centres.append(x[picks[best]])
    return np.array(centres)


def _lloyd(x: np.ndarray, centres: np.ndarray, max_iter: int, threshold: float,
           norms: np.ndarray) -> tuple[np.ndarray, float]:
    k = len(centres)
    labels = None
    for _ in range(max_iter):
        d2 = _squared_distances(x, centres, norms)
        new_labels = d2.argmin(axis=1)
        members = np.zeros((k, len(x)))
        members[new_labels, np.arange(len(x))] = 1.0
        counts = members.sum(axis=1)
        updated = members @ x
        empty = counts == 0
        updated[~empty] /= counts[~empty, None]
        if empty.any():
            # An empty cluster takes the cells farthest from their centres, as sklearn relocates them.
            far = np.argsort(-d2[np.arange(len(x)), new_labels])[: int(empty.sum())]
            updated[empty] = x[far]
        shift = float(((updated - centres) ** 2).sum())
        converged = labels is not None and np.array_equal(new_labels, labels)
        centres, labels = updated, new_labels
        if converged or shift <= threshold:
            break
    d2 = _squared_distances(x, centres, norms)
    labels = d2.argmin(axis=1)
    return labels, float(d2[np.arange(len(x)), labels].sum())


def affinity_matrix(features: np.ndarray, kind: str = "rbf", gamma_scale: float = 1.0, n_neighbors: int = 10) -> np.ndarray:
    """Dense symmetric affinity [N, N] with a zero diagonal.

    rbf:    exp(-gamma_scale * ||a-b||^2 / median ||a-b||^2)
    cosine: max(0, cos(a, b)) ** 2 (non-negative, sharpened)
    knn:    symmetrised binary k-nearest-neighbour graph (sklearn's nearest_neighbors affinity)
    (Position enters as features appended before clustering, not as a factor here.)
    """
    x = features.astype(np.float64)
    if kind == "rbf":
        sq = np.sum(x * x, axis=1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
        off = d2[~np.eye(len(x), dtype=bool)]
        median = np.median(off) if off.size else 1.0
        a = np.exp(-gamma_scale * d2 / max(median, 1e-12))
    elif kind == "cosine":
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        u = x / np.maximum(norm, 1e-12)
        a = np.clip(u @ u.T, 0.0, None) ** 2
    elif kind == "knn":
        from sklearn.neighbors import kneighbors_graph

        g = kneighbors_graph(x, n_neighbors=min(n_neighbors, len(x) - 1), include_self=False).toarray()
        a = 0.5 * (g + g.T)
    else:
        raise ValueError(f"unknown affinity {kind!r}; choose one of {', '.join(AFFINITIES)}")
    np.fill_diagonal(a, 0.0)
    return a


def spectral_embedding(affinity: np.ndarray, dims: int, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import spectral_embedding as sk_spectral_embedding

    # drop_first=False as sklearn's SpectralClustering does before cluster_qr/kmeans.
    return sk_spectral_embedding(affinity, n_components=dims, random_state=seed, drop_first=False)


def spectral_labels(features: np.ndarray, ks: int | list[int], affinity: str = "rbf", seed: int = 0,
                    gamma_scale: float = 1.0, n_neighbors: int = 10) -> dict[int, np.ndarray]:
    """Labels for each k in `ks` from one shared spectral embedding."""
    ks = [ks] if isinstance(ks, int) else list(ks)
    for k in ks:
        if k < 2:
            raise ValueError(f"k must be at least 2, got {k}")
        if k > len(features):
            raise ValueError(f"k = {k} is larger than the number of grid cells ({len(features)})")
    a = affinity_matrix(features, affinity, gamma_scale, n_neighbors)
    embedding = spectral_embedding(a, max(ks), seed)
    return {k: _relabel_by_first_appearance(cluster_qr(embedding[:, :k])) for k in ks}


def cluster_qr(vectors: np.ndarray) -> np.ndarray:
    """Discretise a spectral embedding by column-pivoted QR (Damle et al. 2019): deterministic,
    no K-means restarts; the method sklearn's SpectralClustering calls `cluster_qr`."""
    from scipy.linalg import qr, svd

    k = vectors.shape[1]
    _, _, pivots = qr(vectors.T, pivoting=True, mode="economic")
    u, _, vt = svd(vectors[pivots[:k], :].T)
    return np.abs(vectors @ (u @ vt)).argmax(axis=1)


def _relabel_by_first_appearance(labels: np.ndarray) -> np.ndarray:
    """Canonical label ids (0 for the first cell's cluster, ...) so results are comparable."""
    _, first = np.unique(labels, return_index=True)
    order = np.argsort(first)
    mapping = np.empty(labels.max() + 1, dtype=np.int64)
    mapping[np.unique(labels)[order]] = np.arange(len(order))
    return mapping[labels]
