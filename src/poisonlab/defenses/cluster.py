"""The cluster-and-vote scheme: reduce, cluster, flag samples whose label disagrees with their cluster.

Any scikit-learn reducer (``PCA``, ``TruncatedSVD``, ...) and any clusterer with ``fit_predict``
(``KMeans``, ``MiniBatchKMeans``, ``Birch``, ``DBSCAN``, ...) compose into a detector::

    ClusterDetector(reducer=PCA(20), clusterer=Birch(n_clusters=30))

The registered ``kmeans``, ``pca+kmeans``, ``dbscan`` and ``birch`` detectors are instances of this scheme
with defaults chosen for speed and accuracy (see each class).

Score of sample ``i`` with label ``y_i`` in cluster ``c_i`` (higher = more suspicious)::

    share(c, y)    = fraction of the samples labelled y that lie in cluster c
    disagreement_i = 1 - share(c_i, y_i) / max over labels y' of share(c_i, y')
    remoteness_i   = share of class y_i's samples that lie closer than i to the centre of class y_i
    score_i        = (1 - distance_weight) * disagreement_i + distance_weight * remoteness_i

Both terms lie in [0, 1]. A clean sample sits in a cluster of its own class (disagreement near 0); a
sample whose label was flipped sits in a cluster of its true class (disagreement near 1) and far from
the other samples of its claimed class. The class centre is the mean of the class's samples that agree
with their cluster's top label, so the poisons do not pull it. ``contamination="auto"`` flags
``score > 0.5``: with the default weight that needs a label less than two thirds as common in the
cluster as the top label's share (less than one third for a sample at its class's centre), whatever the
poison rate. Noise points (cluster ``-1``, e.g. from DBSCAN) join the nearest cluster centre.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.cluster import Birch, KMeans, kmeans_plusplus
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import NearestNeighbors

from poisonlab.defenses.base import Detector, check_integer, check_random_state, check_real
from poisonlab.defenses.neighbours import dbscan_labels
from poisonlab.errors import PoisonlabError

AUTO_SCORE_THRESHOLD = 0.5


class ClusterDetector(Detector):
    """Reduce with ``reducer`` (optional), cluster with ``clusterer``, score label disagreement.

    Parameters
    ----------
    reducer : scikit-learn transformer, optional
        Fitted (a clone of it) on the features; ``None`` clusters the features as they are.
    clusterer : scikit-learn clusterer, optional
        Anything with ``fit_predict`` that returns cluster ids (``-1`` = noise). Default:
        ``KMeans(n_clusters=30, n_init=1, random_state=0)``.
    distance_weight : float in [0, 1]
        Weight of the remoteness term (see the module docstring).
    contamination : float in [0, 0.5] or "auto"
        ``"auto"`` flags ``score > 0.5``.

    Attributes
    ----------
    scores_, threshold_, flagged_ : see :class:`Detector`
    cluster_labels_ : np.ndarray (N,) int
        The cluster of every sample after noise points joined their nearest cluster.
    n_clusters_ : int
    """

    def __init__(self, reducer: Any = None, clusterer: Any = None, *, distance_weight: float = 0.25,
                 contamination: float | str = "auto") -> None:
        self.reducer = reducer
        self.clusterer = clusterer
        self.distance_weight = distance_weight
        self.contamination = contamination

    def _check_params(self) -> None:
        super()._check_params()
        check_real("distance_weight", self.distance_weight, low=0.0, high=1.0)
        # only ClusterDetector itself takes estimators; the named subclasses build their own
        reducer, clusterer = getattr(self, "reducer", None), getattr(self, "clusterer", None)
        if reducer is not None and not hasattr(reducer, "fit_transform"):
            raise PoisonlabError(f"reducer must be None or have fit_transform, got {reducer!r}")
        if clusterer is not None and not hasattr(clusterer, "fit_predict"):
            raise PoisonlabError(f"clusterer must be None or have fit_predict, got {clusterer!r}")

    def _components(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        """The (unfitted) reducer and clusterer for this data; subclasses pick data-dependent defaults."""
        clusterer = self.clusterer if self.clusterer is not None else KMeans(n_clusters=30, n_init=1, random_state=0)
        return (clone(self.reducer) if self.reducer is not None else None), clone(clusterer)

    def _score(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        reducer, clusterer = self._components(X, y)
        Z = reduce_features(reducer, X)
        assigned = np.asarray(clusterer.fit_predict(Z))
        if assigned.shape != (len(X),):
            raise PoisonlabError(f"{type(clusterer).__name__}.fit_predict returned shape {assigned.shape}")
        assigned = join_noise_to_nearest(Z, assigned)
        self.cluster_labels_ = assigned
        self.n_clusters_ = int(len(np.unique(assigned)))
        disagreement = cluster_disagreement(assigned, y)
        if float(self.distance_weight) == 0:
            return disagreement
        remote = class_remoteness(Z, y, agrees=disagreement < 0.5)
        w = float(self.distance_weight)
        return (1 - w) * disagreement + w * remote

    def _auto_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        return AUTO_SCORE_THRESHOLD


def reduce_features(reducer: Any, X: np.ndarray) -> np.ndarray:
    """``reducer.fit_transform(X)`` as float32, or ``X`` itself when there is no reducer."""
    if reducer is None:
        return X
    n_components = getattr(reducer, "n_components", None)
    if isinstance(n_components, (int, np.integer)) and n_components > min(X.shape):
        # more components than the data has: keep what exists
        reducer.set_params(n_components=int(min(X.shape)))
    return np.ascontiguousarray(reducer.fit_transform(X), dtype=np.float32)


def join_noise_to_nearest(Z: np.ndarray, assigned: np.ndarray) -> np.ndarray:
    """Cluster ids (N,) with every noise point (id < 0) moved to the cluster whose mean is nearest."""
    noise = assigned < 0
    if not noise.any():
        return assigned
    ids = np.unique(assigned[~noise])
    if len(ids) == 0:
        raise PoisonlabError("the clusterer marked every sample as noise; loosen it (e.g. a larger DBSCAN eps)")
    centres = np.stack([Z[assigned == c].mean(axis=0) for c in ids])
    out = assigned.copy()
    out[noise] = ids[nearest_centre(Z[noise], centres)]
    return out


def nearest_centre(Z: np.ndarray, centres: np.ndarray, *, batch: int = 8192) -> np.ndarray:
    """Index (N,) of the nearest row of ``centres`` (K, D) for every row of ``Z`` (N, D)."""
    out = np.empty(len(Z), dtype=np.int64)
    c_sq = (centres.astype(np.float64) ** 2).sum(axis=1)
    for i in range(0, len(Z), batch):
        zb = Z[i:i + batch].astype(np.float64)
        # |z - c|^2 up to the |z|^2 term, which does not change the argmin
        out[i:i + batch] = np.argmin(c_sq[None, :] - 2 * zb @ centres.T.astype(np.float64), axis=1)
    return out


def cluster_disagreement(assigned: np.ndarray, y: np.ndarray) -> np.ndarray:
    """For every sample (N,): ``1 - share(c, y) / max_y' share(c, y')``, where ``share(c, y)`` is the
    fraction of all samples labelled ``y`` that lie in cluster ``c``. 0 for the cluster's own label;
    near 1 for a label that has only a small part of its samples here.

    Shares rather than raw counts: a targeted flip (48% of the 2s relabelled 8) leaves a cluster of 2s
    with nearly as many 8 labels as 2 labels, but it holds almost all of label 2 and only a third of the
    inflated label 8, so the 8s there are flagged (a count majority would leave it to chance which label
    wins). For balanced labels (uniform flips, clean data) shares and counts agree. Relative to the
    cluster's top label rather than to its size, so a cluster that mixes classes evenly (no evidence
    either way, e.g. one DBSCAN cluster spanning everything) accuses nobody.
    """
    _, cluster_idx = np.unique(assigned, return_inverse=True)
    _, label_idx = np.unique(y, return_inverse=True)
    n_clusters, n_labels = int(cluster_idx.max()) + 1, int(label_idx.max()) + 1
    counts = np.zeros((n_clusters, n_labels), dtype=np.float64)
    np.add.at(counts, (cluster_idx, label_idx), 1)
    share = counts / counts.sum(axis=0, keepdims=True)
    return 1.0 - share[cluster_idx, label_idx] / share.max(axis=1)[cluster_idx]


def class_remoteness(Z: np.ndarray, y: np.ndarray, *, agrees: np.ndarray) -> np.ndarray:
    """For each sample, the share (0..1) of its labelled class lying closer to that class's centre.

    The centre of class ``c`` is the mean of its samples with ``agrees`` True (those whose label is their
    cluster's majority), falling back to all its samples when none agree.
    """
    remote = np.zeros(len(Z), dtype=np.float64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        core = members[agrees[members]]
        centre = Z[core if len(core) else members].mean(axis=0)
        dist = np.linalg.norm(Z[members] - centre, axis=1)
        # rank / n: the farthest sample of a class gets the largest share
        ranks = np.argsort(np.argsort(dist, kind="stable"), kind="stable")
        remote[members] = (ranks + 1) / len(members)
    return remote


def _default_clusters(y: np.ndarray, n_clusters: int | None, per_class: int) -> int:
    """``n_clusters`` or ``per_class`` clusters per label, never more than the samples."""
    k = int(n_clusters) if n_clusters is not None else per_class * len(np.unique(y))
    return min(k, len(y))


def _pca(n_components: int | None, random_state: int) -> Any:
    if n_components is None:
        return None
    # "auto" takes the covariance eigendecomposition for tall data (N >= 10 D, D <= 1000): exact, and
    # faster than randomized SVD there (see docs/measurements.md)
    return PCA(n_components=int(n_components), svd_solver="auto", random_state=random_state)


class KMeansDetector(ClusterDetector):
    """The paper's K-means defense: K-means on the features; flag labels their cluster disagrees with.

    A sample is suspect when its label is rare in its cluster and it sits far from its labelled class.

    Parameters
    ----------
    n_clusters : int, optional
        Default: ``clusters_per_class`` times the number of labels (several clusters per class let a
        class with several writing styles keep them apart).
    clusters_per_class : int
    max_iter : int
        Lloyd iterations (few are enough for a label vote, and keep detection fast; see
        docs/measurements.md).
    distance_weight, contamination : see :class:`ClusterDetector`
    random_state : int
    """

    def __init__(self, *, n_clusters: int | None = None, clusters_per_class: int = 3, max_iter: int = 20,
                 distance_weight: float = 0.25, contamination: float | str = "auto", random_state: int = 0) -> None:
        self.n_clusters = n_clusters
        self.clusters_per_class = clusters_per_class
        self.max_iter = max_iter
        self.distance_weight = distance_weight
        self.contamination = contamination
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        check_integer("n_clusters", self.n_clusters, allow_none=True)
        check_integer("clusters_per_class", self.clusters_per_class)
        check_integer("max_iter", self.max_iter)
        check_random_state("random_state", self.random_state)

    def _components(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        return None, _kmeans(_default_clusters(y, self.n_clusters, self.clusters_per_class), self.max_iter,
                             self.random_state)


def _kmeans(n_clusters: int, max_iter: int, random_state: int) -> Any:
    return SubsampleSeededKMeans(n_clusters=n_clusters, max_iter=max_iter, random_state=random_state)


class SubsampleSeededKMeans:
    """K-means (Lloyd, one run) whose k-means++ seeding looks at a random subsample only.

    Seeding on all 60,000 samples costs more than the Lloyd iterations themselves; on 5,000 it picks
    centres as good for a label vote at a fraction of the cost.
    """

    def __init__(self, *, n_clusters: int, max_iter: int = 20, seed_sample: int = 5000, random_state: int = 0) -> None:
        self.n_clusters, self.max_iter = n_clusters, max_iter
        self.seed_sample, self.random_state = seed_sample, random_state

    def fit_predict(self, Z: np.ndarray) -> np.ndarray:
        k = min(int(self.n_clusters), len(Z))
        rng = np.random.default_rng(self.random_state)
        sample = Z if len(Z) <= self.seed_sample else Z[np.sort(rng.choice(len(Z), self.seed_sample, replace=False))]
        centres, _ = kmeans_plusplus(sample, k, random_state=int(rng.integers(2**31)))
        kmeans = KMeans(n_clusters=k, init=centres, n_init=1, max_iter=int(self.max_iter),
                        random_state=int(rng.integers(2**31)))
        return kmeans.fit_predict(Z)


class PCAKMeansDetector(KMeansDetector):
    """The paper's hybrid defense: PCA first, then K-means on the principal components.

    Our improvement over the paper's reading (K-means with one cluster per class, flag samples far from
    their centroid): vote with the labels. Against a label flip the centroid-distance outlier rule is
    near chance, since a flipped sample sits in its true class's cluster at an ordinary distance; the
    label vote with several clusters per class finds the flips (see docs/measurements.md).

    Parameters
    ----------
    n_components : int
        Principal components kept (randomized PCA fitted on the features being filtered).
    n_clusters, clusters_per_class, max_iter, distance_weight, contamination, random_state :
        see :class:`KMeansDetector`.
    """

    def __init__(self, *, n_components: int = 16, n_clusters: int | None = None, clusters_per_class: int = 3,
                 max_iter: int = 20, distance_weight: float = 0.25, contamination: float | str = "auto",
                 random_state: int = 0) -> None:
        self.n_components = n_components
        self.n_clusters = n_clusters
        self.clusters_per_class = clusters_per_class
        self.max_iter = max_iter
        self.distance_weight = distance_weight
        self.contamination = contamination
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        check_integer("n_components", self.n_components, allow_none=True)

    def _components(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        return (_pca(self.n_components, self.random_state),
                _kmeans(_default_clusters(y, self.n_clusters, self.clusters_per_class), self.max_iter,
                        self.random_state))


class BirchDetector(ClusterDetector):
    """BIRCH (the paper's future work) inside the cluster-and-vote scheme, on principal components.

    Parameters
    ----------
    n_components : int or None
        PCA components before clustering (``None``: none).
    n_clusters : int, optional
        Final clusters (default ``clusters_per_class`` per label).
    clusters_per_class : int
    threshold : float, optional
        BIRCH's subcluster radius; default: ``threshold_scale`` times the median distance of a sample to
        the data's mean, so the setting does not depend on the features' units, halved (up to 6 times)
        while it leaves fewer than 10 subclusters per final cluster. Starting coarse and refining keeps
        BIRCH fast: a small fixed radius makes a subcluster of almost every sample, and time grows with
        the subclusters (see docs/measurements.md).
    threshold_scale : float
        The starting radius in units of that spread. 0.25: a radius of half the spread left 10-18
        subclusters for 30 clusters on every activation set we measured, so starting there cost one
        wasted pass over the data.
    distance_weight, contamination : see :class:`ClusterDetector`
    random_state : int
        Seeds the PCA.
    """

    # 8 components: about as good as 16 on the label-flip preset, better on FGSM, and faster
    # (see docs/measurements.md)
    def __init__(self, *, n_components: int | None = 8, n_clusters: int | None = None, clusters_per_class: int = 3,
                 threshold: float | None = None, threshold_scale: float = 0.25, distance_weight: float = 0.25,
                 contamination: float | str = "auto", random_state: int = 0) -> None:
        self.n_components = n_components
        self.n_clusters = n_clusters
        self.clusters_per_class = clusters_per_class
        self.threshold = threshold
        self.threshold_scale = threshold_scale
        self.distance_weight = distance_weight
        self.contamination = contamination
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        check_integer("n_components", self.n_components, allow_none=True)
        check_integer("n_clusters", self.n_clusters, allow_none=True)
        check_integer("clusters_per_class", self.clusters_per_class)
        check_real("threshold", self.threshold, low=0.0, low_open=True, allow_none=True)
        check_real("threshold_scale", self.threshold_scale, low=0.0, low_open=True)
        check_random_state("random_state", self.random_state)

    def _components(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        return _pca(self.n_components, self.random_state), _ScaledBirch(
            n_clusters=_default_clusters(y, self.n_clusters, self.clusters_per_class),
            threshold=self.threshold, threshold_scale=self.threshold_scale)


class _ScaledBirch:
    """Birch whose radius threshold defaults to a share of the data's spread (known only at fit time)."""

    max_halvings = 6
    subclusters_per_cluster = 10

    def __init__(self, *, n_clusters: int, threshold: float | None, threshold_scale: float) -> None:
        self.n_clusters, self.threshold, self.threshold_scale = n_clusters, threshold, threshold_scale

    def fit_predict(self, Z: np.ndarray) -> np.ndarray:
        threshold = self.threshold if self.threshold is not None else \
            float(self.threshold_scale) * typical_spread(Z)
        if not threshold > 0:
            raise PoisonlabError(f"BIRCH threshold must be > 0, got {threshold}")
        n_clusters = min(self.n_clusters, len(Z))
        # the final step groups subclusters; ~10 per cluster is fine grain, far more only costs time
        wanted_subclusters = min(self.subclusters_per_cluster * n_clusters, len(Z))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for _ in range(self.max_halvings + 1):
                birch = Birch(n_clusters=n_clusters, threshold=threshold).fit(Z)
                if len(birch.subcluster_centers_) >= wanted_subclusters or self.threshold is not None:
                    break
                threshold /= 2
        return birch.labels_


def typical_spread(Z: np.ndarray) -> float:
    """Median distance of a sample to the mean (over at most 10,000 evenly spaced samples)."""
    sample = Z[:: max(1, len(Z) // 10000)]
    spread = float(np.median(np.linalg.norm(sample - sample.mean(axis=0), axis=1)))
    return spread if spread > 0 else 1.0


class DBSCANDetector(ClusterDetector):
    """DBSCAN (the paper's future work) inside the cluster-and-vote scheme, on principal components.

    Density clusters need no cluster count; noise points join the nearest cluster for the label vote.

    Parameters
    ----------
    n_components : int or None
        PCA components before clustering.
    eps : float, optional
        Neighbourhood radius; default: the ``eps_quantile`` quantile of the distance of each sample (of
        at most 5,000 evenly spaced ones) to its ``min_samples``-th nearest neighbour.
    eps_quantile : float in (0, 1)
    min_samples : int
    distance_weight, contamination : see :class:`ClusterDetector`
    random_state : int
        Seeds the PCA.
    """

    # 8 components and min_samples 5: as good as 16 and 10 on the label-flip preset and faster; on FGSM
    # poisons DBSCAN is fragile under any of these settings (see docs/measurements.md)
    def __init__(self, *, n_components: int | None = 8, eps: float | None = None, eps_quantile: float = 0.5,
                 min_samples: int = 5, distance_weight: float = 0.25, contamination: float | str = "auto",
                 random_state: int = 0) -> None:
        self.n_components = n_components
        self.eps = eps
        self.eps_quantile = eps_quantile
        self.min_samples = min_samples
        self.distance_weight = distance_weight
        self.contamination = contamination
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        check_integer("n_components", self.n_components, allow_none=True)
        check_real("eps", self.eps, low=0.0, low_open=True, allow_none=True)
        check_real("eps_quantile", self.eps_quantile, low=0.0, high=1.0, low_open=True, high_open=True)
        check_integer("min_samples", self.min_samples)
        check_random_state("random_state", self.random_state)

    def _components(self, X: np.ndarray, y: np.ndarray) -> tuple[Any, Any]:
        return _pca(self.n_components, self.random_state), _AutoEpsDBSCAN(
            eps=self.eps, eps_quantile=self.eps_quantile, min_samples=self.min_samples)


class _AutoEpsDBSCAN:
    """DBSCAN whose radius defaults to a quantile of the k-th-neighbour distances (known only at fit time)."""

    def __init__(self, *, eps: float | None, eps_quantile: float, min_samples: int) -> None:
        self.eps, self.eps_quantile, self.min_samples = eps, eps_quantile, min_samples

    def fit_predict(self, Z: np.ndarray) -> np.ndarray:
        min_samples = max(1, min(int(self.min_samples), len(Z) - 1))
        eps = self.eps
        if eps is None:
            sample = Z[:: max(1, len(Z) // 5000)]
            dist, _ = NearestNeighbors(n_neighbors=min(min_samples + 1, len(sample))).fit(sample).kneighbors(sample)
            # a sample's k-NN radius in the sample grows as the sample thins; rescale to the full set
            eps = float(np.quantile(dist[:, -1], self.eps_quantile)) * (len(sample) / len(Z)) ** (1 / Z.shape[1])
        if not eps > 0:
            raise PoisonlabError(f"DBSCAN eps must be > 0, got {eps}")
        return dbscan_labels(Z, eps, min_samples)
