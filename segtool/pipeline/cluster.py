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
    distances. Float32: the distances do not need more, and BLAS runs twice as fast."""
    x = features.astype(np.float64)
    if keep_variance >= 1.0:
        return x
    centred = x - x.mean(axis=0, keepdims=True)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    energy = np.cumsum(s ** 2)
    if energy[-1] <= 0:
        return centred[:, :1].astype(np.float32)  # a flat image: every cell the same
    r = int(np.searchsorted(energy / energy[-1], keep_variance)) + 1
    return (u[:, :r] * s[:r]).astype(np.float32)


def kmeans_labels(features: np.ndarray, k: int, seed: int = 0, n_init: int = 4) -> np.ndarray:
    from sklearn.cluster import KMeans

    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if k > len(features):
        raise ValueError(f"k = {k} is larger than the number of grid cells ({len(features)})")
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    return _relabel_by_first_appearance(km.fit_predict(features))


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
