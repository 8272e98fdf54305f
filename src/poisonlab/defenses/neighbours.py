"""Exact k-nearest-neighbour search and label votes, shared by the neighbour-based detectors.

In few dimensions a k-d tree answers all N queries in about O(N log N); scipy's ``cKDTree`` does so
several times faster than scikit-learn's ``KDTree`` on the same points, and scikit-learn switches to
brute force above 15 dimensions, where a tree still wins on the low-dimensional structure of network
activations (see docs/measurements.md). Above ``TREE_MAX_DIM`` dimensions the search is
scikit-learn's brute force.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

# dimensions up to which the k-d tree is used
TREE_MAX_DIM = 32
# points per leaf: 32 answered 10-20 neighbour queries in 10 dimensions faster than scipy's default 16
LEAF_SIZE = 32


def nearest_neighbours(Z: np.ndarray, k: int, *, n_jobs: int | None = None) -> np.ndarray:
    """Indices (N, k) of the ``k`` nearest rows of ``Z`` (N, D) to each row, itself excluded, nearest first.

    Exact Euclidean neighbours. As in scikit-learn's ``kneighbors()``, the query asks for ``k + 1`` and
    drops the row itself, or, when duplicates crowd it out of those, the first (a duplicate at distance 0).
    ``n_jobs``: query threads (``None`` or ``-1``: every core). The threads split the queries and never
    wait for each other, so unlike a multi-threaded BLAS call they do not stall on a busy machine.
    """
    Z = np.asarray(Z)
    n = len(Z)
    k = int(k)
    if not 1 <= k < n:
        raise ValueError(f"need 1 <= k < N, got k={k} for N={n}")
    if Z.shape[1] > TREE_MAX_DIM:
        return NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=n_jobs).fit(Z).kneighbors(
            return_distance=False)
    tree = cKDTree(np.asarray(Z, dtype=np.float64), leafsize=LEAF_SIZE)
    _, found = tree.query(tree.data, k=k + 1, workers=-1 if n_jobs is None else int(n_jobs))
    found = np.asarray(found, dtype=np.int64).reshape(n, k + 1)
    keep = found != np.arange(n)[:, None]
    crowded = keep.all(axis=1)
    keep[crowded, 0] = False
    return found[keep].reshape(n, k)


def search_space(X: np.ndarray, n_components: int | None, *, random_state: int = 0) -> np.ndarray:
    """The rows of ``X`` (N, D) where the label votes search for neighbours: a PCA to ``n_components``
    dimensions (N, min(n_components, N)), or ``X`` itself when ``n_components`` is ``None`` or not below D.

    One BLAS thread: small BLAS calls stall on a busy machine (docs/measurements.md), and a k-d tree in
    10 dimensions is far faster than a brute-force search in 128.
    """
    if n_components is None or n_components >= X.shape[1]:
        return X
    with threadpool_limits(limits=1):
        return PCA(n_components=min(int(n_components), len(X)), random_state=random_state).fit_transform(X)


def neighbour_votes(X: np.ndarray, y_index: np.ndarray, k: int, *, n_jobs: int | None = None) -> np.ndarray:
    """(N, K) counts of each label index among every sample's ``k`` nearest neighbours (itself excluded)."""
    neighbours = nearest_neighbours(X, k, n_jobs=n_jobs)
    n_labels = int(y_index.max()) + 1
    flat = (np.arange(len(X))[:, None] * n_labels + y_index[neighbours]).ravel()
    return np.bincount(flat, minlength=len(X) * n_labels).reshape(len(X), n_labels)


__all__ = ["TREE_MAX_DIM", "nearest_neighbours", "neighbour_votes", "search_space"]
