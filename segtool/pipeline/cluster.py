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
    """K-means of the rows of `features` into k clusters (see kmeans_labels_per_k)."""
    return kmeans_labels_per_k(features, [k], seed, n_init, max_iter, tol)[k]


def kmeans_labels_per_k(features: np.ndarray, ks, seed: int = 0, n_init: int = 4, max_iter: int = 300,
                        tol: float = 1e-4) -> dict[int, np.ndarray]:
    """K-means for each k in `ks` (greedy k-means++ seeding, Lloyd iterations, the best of `n_init`
    runs by inertia), the algorithm and stopping rule of sklearn's KMeans, in numpy.

    Written here rather than called from sklearn because importing sklearn (which imports
    scipy.stats) costs about a second, more than segmenting a photo: the command line's cold
    start is most of a single image's time.

    Every run of every k iterates together, one matrix product per Lloyd step for all of them,
    each run stopping by its own rule: on a grid of about 1,000 cells numpy's per-call cost is
    much of the time, and the vote's runs (k x restarts: 16 for the earlier vote over 4 k) take about
    half the time they take one after another, with the same labels (bench/segment_speed.py). Each k draws its seeds from its own generator
    (`seed`), so a k's result does not depend on which other k are asked for."""
    ks = list(dict.fromkeys(int(k) for k in ks))
    for k in ks:
        if k < 2:
            raise ValueError(f"k must be at least 2, got {k}")
        if k > len(features):
            raise ValueError(f"k = {k} is larger than the number of grid cells ({len(features)})")
    x = np.asarray(features, dtype=np.float64)
    # sklearn's tolerance: relative to the data's mean variance per dimension.
    threshold = tol * float(np.mean(np.var(x, axis=0)))
    norms = (x * x).sum(axis=1)  # every distance below reuses the cells' squared norms
    seeds = []
    for k in ks:
        seeds += _kmeans_plusplus_runs(x, k, np.random.default_rng(seed), norms, n_init)
    labels, inertia = _lloyd_together(x, seeds, max_iter, threshold, norms)
    result = {}
    for i, k in enumerate(ks):
        best = i * n_init + int(np.argmin(inertia[i * n_init:(i + 1) * n_init]))  # the first on a tie
        result[k] = _relabel_by_first_appearance(labels[best])
    return result


def _squared_distances(x: np.ndarray, centres: np.ndarray, x_norms: np.ndarray) -> np.ndarray:
    d2 = x @ centres.T
    d2 *= -2.0
    d2 += x_norms[:, None]
    d2 += (centres * centres).sum(axis=1)[None, :]
    return np.maximum(d2, 0.0, out=d2)


def _kmeans_plusplus_runs(x: np.ndarray, k: int, rng: np.random.Generator, norms: np.ndarray,
                          runs: int) -> list[np.ndarray]:
    """`runs` greedy k-means++ seedings (Arthur and Vassilvitskii 2007, as sklearn does it: each new
    centre is the best of 2 + log(k) candidates drawn with probability proportional to squared
    distance), computed together. The random numbers are drawn first, in the order that seeding
    the runs one after another draws them, so the centres are the same either way."""
    n = len(x)
    trials = 2 + int(np.log(k))
    firsts, uniforms = [], []
    for _ in range(runs):
        firsts.append(int(rng.integers(n)))
        uniforms.append([rng.random(trials) for _ in range(1, k)])
    chosen = [[first] for first in firsts]
    closest = _squared_distances(x, x[firsts], norms).T  # [runs, N]
    for step in range(k - 1):
        potential = closest.sum(axis=1)
        picks = np.empty((runs, trials), dtype=np.int64)
        for r in range(runs):
            if potential[r] <= 0:  # every cell on a centre already: any cell will do
                picks[r] = min(int(uniforms[r][step][0] * n), n - 1)
            else:
                picks[r] = np.searchsorted(np.cumsum(closest[r]), uniforms[r][step] * potential[r])
        picks = np.minimum(picks, n - 1)
        distances = _squared_distances(x, x[picks.ravel()], norms).T.reshape(runs, trials, n)
        candidate = np.minimum(closest[:, None, :], distances)
        best = candidate.sum(axis=2).argmin(axis=1)
        closest = candidate[np.arange(runs), best]
        for r in range(runs):
            chosen[r].append(int(picks[r, best[r]]))
    return [x[c] for c in chosen]


def _lloyd_together(x: np.ndarray, seeds: list[np.ndarray], max_iter: int, threshold: float,
                    norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations of several runs at once (each from its seed centres, each with its own k),
    every run stopping when its labels repeat or its centres move less than `threshold`.
    Returns each run's labels [runs, N] and inertia [runs].

    The iterations compute in float32 (half the time of float64 in the two matrix products that
    are most of the work; the labels agree with float64's on real grids). A cell's nearest centre
    is the one with the least |c|^2 - 2 x.c: its own |x|^2 is the same for every centre."""
    n, c = x.shape
    runs, k = len(seeds), max(len(s) for s in seeds)
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    centres = np.zeros((runs, k, c), dtype=np.float32)
    used = np.zeros((runs, k), dtype=bool)
    for r, s in enumerate(seeds):
        centres[r, :len(s)], used[r, :len(s)] = s, True
    labels = np.full((runs, n), -1)
    active = np.arange(runs)
    cells = np.arange(n)
    for _ in range(max_iter):
        current = centres[active]
        a = len(active)
        score = _centre_scores(x32, current, used[active])  # [K, a, N]
        new_labels = score.argmin(axis=0)  # [a, N]
        # Every run's sums in one matrix product: cell n adds to row (run, its cluster).
        rows = new_labels + (np.arange(a) * k)[:, None]
        members = np.zeros((a * k, n), dtype=np.float32)
        members[rows, cells[None, :]] = 1.0
        counts = np.bincount(rows.ravel(), minlength=a * k).reshape(a, k)
        updated = (members @ x32).reshape(a, k, c)
        filled = counts > 0
        updated[filled] /= counts[filled][:, None]
        empty = ~filled & used[active]
        for r in np.flatnonzero(empty.any(axis=1)):
            # An empty cluster takes the cells farthest from their centres, as sklearn relocates them.
            gone = np.flatnonzero(empty[r])
            own = score[new_labels[r], r, cells] + norms
            far = np.argsort(-own)[:len(gone)]
            updated[r, gone] = x32[far]
        shift = ((updated - current).astype(np.float64) ** 2).sum(axis=(1, 2))
        converged = (new_labels == labels[active]).all(axis=1)
        centres[active], labels[active] = updated, new_labels
        active = active[~(converged | (shift <= threshold))]
        if len(active) == 0:
            break
    # The final assignment and its inertia in float64, as the runs are compared by it.
    x64 = np.asarray(x, dtype=np.float64)
    d2 = np.stack([_squared_distances(x64, centres[r].astype(np.float64), norms) for r in range(runs)])
    d2[~np.broadcast_to(used[:, None, :], d2.shape)] = np.inf
    nearest = d2.argmin(axis=2)
    inertia = np.take_along_axis(d2, nearest[:, :, None], axis=2)[:, :, 0].sum(axis=1)
    return nearest, inertia


def _centre_scores(x: np.ndarray, centres: np.ndarray, used: np.ndarray) -> np.ndarray:
    """|c|^2 - 2 x.c [K, runs, N] for every cell and every run's centres [runs, K, C], +inf at a
    run's unused centres (a run with fewer than K clusters), so no cell picks them."""
    runs, k, c = centres.shape
    by_centre = np.ascontiguousarray(centres.transpose(1, 0, 2)).reshape(k * runs, c)
    score = (by_centre @ x.T).reshape(k, runs, len(x))
    score *= -2.0
    sizes = np.where(used.T, (centres * centres).sum(axis=2).T, np.inf)  # [K, runs]
    score += sizes[:, :, None]
    return score


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
    return spectral_labels_from_affinity(affinity_matrix(features, affinity, gamma_scale, n_neighbors), ks, seed)


def spectral_labels_from_affinity(affinity: np.ndarray, ks: list[int], seed: int = 0) -> dict[int, np.ndarray]:
    """Labels for each k from one spectral embedding of a given affinity [N, N] (zero diagonal)."""
    embedding = spectral_embedding(affinity, max(ks), seed)
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
