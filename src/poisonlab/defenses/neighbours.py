"""Exact k-nearest-neighbour search, label votes and DBSCAN's neighbourhoods, shared by the detectors.

In few dimensions a k-d tree answers all N queries in about O(N log N); scipy's ``cKDTree`` does so
several times faster than scikit-learn's ``KDTree`` on the same points, and scikit-learn switches to
brute force above 15 dimensions, where a tree still wins on the low-dimensional structure of network
activations (see docs/measurements.md). Above ``TREE_MAX_DIM`` dimensions the search is
scikit-learn's brute force.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
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
    _, found = query_in_tree_order(tree, k + 1, n_jobs=n_jobs)
    keep = found != np.arange(n)[:, None]
    crowded = keep.all(axis=1)
    keep[crowded, 0] = False
    return found[keep].reshape(n, k)


def query_in_tree_order(tree: cKDTree, k: int, *, n_jobs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Distances (N, k) and indices (N, k) of the ``k`` nearest points of ``tree`` to each of its own
    points, nearest first (the point itself included), in the points' original order.

    The queries are asked in the tree's leaf order: consecutive queries then walk the same nodes, which
    stay in cache, and all N queries finish in about two thirds of the time of the original order
    (docs/measurements.md); every answer is the same.
    """
    order = tree.indices
    n = len(order)
    dist, found = tree.query(tree.data[order], k=k, workers=-1 if n_jobs is None else int(n_jobs))
    distances, indices = np.empty((n, k)), np.empty((n, k), dtype=np.int64)
    distances[order] = np.asarray(dist).reshape(n, k)
    indices[order] = np.asarray(found, dtype=np.int64).reshape(n, k)
    return distances, indices


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


def dbscan_labels(Z: np.ndarray, eps: float, min_samples: int, *, n_jobs: int | None = None) -> np.ndarray:
    """The labels (N,) that ``sklearn.cluster.DBSCAN(eps, min_samples=min_samples).fit_predict(Z)`` gives
    (Euclidean; ``-1`` = noise), computed with scipy's k-d tree (Ester et al. 1996).

    Why not scikit-learn's: it lists every eps-neighbourhood, about 80 points each at our default radius,
    while the clusters need far less. A point is core when its ``min_samples``-th nearest point (itself
    included) lies within ``eps``: one k-nearest query. Clusters are the connected components of the core
    points' eps-graph, numbered, as scikit-learn numbers them, by their lowest core index. A non-core
    point within ``eps`` of a core point is a border point and takes the lowest cluster number among its
    core neighbours, the cluster scikit-learn's in-order expansion reaches it from first. Same labels in
    about half the time (docs/measurements.md).
    """
    Z = np.asarray(Z, dtype=np.float64)
    n = len(Z)
    min_samples = max(1, min(int(min_samples), n))
    workers = -1 if n_jobs is None else int(n_jobs)
    distances, _ = query_in_tree_order(cKDTree(Z, leafsize=LEAF_SIZE), min_samples, n_jobs=n_jobs)
    core = distances[:, -1] <= eps
    labels = np.full(n, -1, dtype=np.int64)
    core_idx = np.flatnonzero(core)
    if len(core_idx) == 0:
        return labels
    core_tree = cKDTree(Z[core_idx], leafsize=LEAF_SIZE)
    pairs = core_tree.query_pairs(eps, output_type="ndarray")
    graph = sparse.coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])),
                              shape=(len(core_idx), len(core_idx)))
    n_components, component = connected_components(graph, directed=False)
    lowest = np.full(n_components, n, dtype=np.int64)
    np.minimum.at(lowest, component, core_idx)
    number = np.empty(n_components, dtype=np.int64)
    number[np.argsort(lowest, kind="stable")] = np.arange(n_components)
    labels[core_idx] = number[component]
    others = np.flatnonzero(~core)
    if len(others):
        found = core_tree.query_ball_point(Z[others], r=eps, workers=workers, return_sorted=False)
        lengths = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
        border = lengths > 0
        if border.any():
            members = np.concatenate([np.asarray(f, dtype=np.int64) for f in found[border]])
            starts = np.r_[0, np.cumsum(lengths[border])[:-1]]
            labels[others[border]] = np.minimum.reduceat(labels[core_idx][members], starts)
    return labels


__all__ = ["TREE_MAX_DIM", "dbscan_labels", "nearest_neighbours", "neighbour_votes", "query_in_tree_order",
           "search_space"]
