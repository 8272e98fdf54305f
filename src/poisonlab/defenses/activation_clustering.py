"""Activation clustering (Chen et al. 2018, "Detecting Backdoor Attacks on Deep Neural Networks by
Activation Clustering").

Inside a class that holds a backdoor, the penultimate activations split into two groups: the clean
samples and the triggered ones the network learnt through a different feature. A clean class does
not split into a small, well separated group.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, FastICA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import silhouette_samples
from threadpoolctl import threadpool_limits

from poisonlab.defenses.base import Detector, check_choice, check_integer, check_random_state, check_real

REDUCERS = ("pca", "ica")
# default silhouette thresholds per reducer; ICA whitens every component to unit variance, which
# dilutes the separation of a cluster that lives in few directions, so its silhouettes run lower
DEFAULT_SILHOUETTE_THRESHOLD = {"pca": 0.35, "ica": 0.25}


class ActivationClustering(Detector):
    """Per class: reduce, split in two with k-means, flag the small cluster if it is suspicious.

    For every class ``c`` the rows ``X_c`` (n_c, D) are reduced to ``n_components`` dimensions
    (``reducer="pca"``: PCA, the default; ``"ica"``: PCA then FastICA, as in Chen et al.), clustered
    with 2-means, and the split is judged by two numbers stored per class in ``class_report_``:

    - ``relative_size``: share of the class in the smaller cluster (0..0.5);
    - ``silhouette``: mean silhouette coefficient of the split (-1..1; near 0 for one blob cut in two),
      exact for classes of at most ``silhouette_sample_size`` rows, else estimated against a stratified
      random sample of that many (see :func:`sampled_silhouette`).

    The class is *suspicious* when ``relative_size <= size_threshold`` and
    ``silhouette > silhouette_threshold``. A clean, unimodal class splits roughly in half, so the size
    test alone keeps it; the silhouette test keeps a class whose small group is only a tail.

    The default silhouette thresholds lie between the silhouettes of clean classes and of classes
    holding foreign samples, measured on penultimate activations of the paper CNN on MNIST (see
    docs/measurements.md). PCA is the default because it separates the two groups by a wider
    margin there.

    Scores (higher = more suspicious), in three bands:

    - small cluster of a class passing the size test: ``silhouette`` of the class (in (-1, 1]);
    - small cluster failing the size test: ``silhouette - 2``;
    - large cluster (and classes too small to split): ``-3``;

    each minus ``1e-6 * (1 - s_i) / 2`` with ``s_i`` the sample's own silhouette, to order samples
    within a cluster (a sample that fits its cluster well ranks first). ``contamination="auto"``
    thresholds at ``silhouette_threshold``, which flags exactly the small clusters of the suspicious
    classes; it does not use the poison rate and flags nothing in a class that does not split. A float
    ``contamination`` ranks the samples by the bands.

    Parameters
    ----------
    contamination : float or "auto"
    n_components : int
        Dimensions after reduction (Chen et al.: 10); capped by the rank of each class.
    reducer : {"ica", "pca"}
    size_threshold : float
        Largest relative size (0..0.5) of a poisonous cluster (Chen et al.: 0.35).
    silhouette_threshold : float or None
        Smallest mean silhouette (-1..1) of a poisoned class's split; None: 0.35 for PCA, 0.25 for ICA.
    min_class_size : int
        Classes with fewer rows are not split.
    n_init : int
        k-means restarts per class (3: on the six activation sets of ``benchmarks/detection.py`` the
        F1 of 10 restarts within 0.001, in about two thirds of the time; docs/measurements.md).
    silhouette_sample_size : int or None
        Reference rows per class for the silhouettes (``None``: all, the exact silhouette, O(n_c^2) time
        and the bulk of the cost on large classes; with a sample the cost is O(n_c * sample)).
    random_state : int
        Seed of FastICA / PCA, k-means and the silhouette sample.
    """

    def __init__(self, *, contamination="auto", n_components: int = 10, reducer: str = "pca",
                 size_threshold: float = 0.35, silhouette_threshold: float | None = None, min_class_size: int = 20,
                 silhouette_sample_size: int | None = 1000, n_init: int = 3, random_state: int = 0):
        self.contamination = contamination
        self.n_components = n_components
        self.reducer = reducer
        self.size_threshold = size_threshold
        self.silhouette_threshold = silhouette_threshold
        self.min_class_size = min_class_size
        self.silhouette_sample_size = silhouette_sample_size
        self.n_init = n_init
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        check_integer("n_components", self.n_components)
        check_choice("reducer", self.reducer, REDUCERS)
        check_real("size_threshold", self.size_threshold, low=0.0, high=0.5, low_open=True)
        check_real("silhouette_threshold", self.silhouette_threshold, low=-1.0, high=1.0, high_open=True,
                   allow_none=True)
        check_integer("min_class_size", self.min_class_size, minimum=0)
        check_integer("silhouette_sample_size", self.silhouette_sample_size, minimum=2, allow_none=True)
        check_integer("n_init", self.n_init)
        check_random_state("random_state", self.random_state)

    def _score(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        silhouette_threshold = self._silhouette_threshold()
        scores = np.full(len(X), -3.0)
        report = {}
        # one thread: on small per-class problems OpenMP start-up and contention cost more than the work
        # (see docs/measurements.md); one limit for all classes, since setting it costs milliseconds each time
        with threadpool_limits(limits=1):
            for c in np.unique(y):
                self._split_class(X, y, c, silhouette_threshold, scores, report)
        self.class_report_ = report
        return scores

    def _split_class(self, X: np.ndarray, y: np.ndarray, c, silhouette_threshold: float, scores: np.ndarray,
                     report: dict) -> None:
        """Split class ``c`` in two, write its scores into ``scores`` and its entry into ``report``."""
        idx = np.flatnonzero(y == c)
        if len(idx) < max(int(self.min_class_size), 4):
            return
        reduced = self._reduce(X[idx].astype(np.float64))
        if reduced is None:
            return
        clusters = KMeans(n_clusters=2, n_init=self.n_init, random_state=self.random_state).fit_predict(reduced)
        counts = np.bincount(clusters, minlength=2)
        if counts.min() == 0:
            return
        sample_silhouette = sampled_silhouette(reduced, clusters, sample_size=self.silhouette_sample_size,
                                               random_state=self.random_state)
        small = int(counts.argmin())
        silhouette = float(sample_silhouette.mean())
        relative_size = float(counts[small] / len(idx))
        suspicious = relative_size <= self.size_threshold and silhouette > silhouette_threshold
        report[int(c)] = {"relative_size": relative_size, "silhouette": silhouette,
                          "suspicious": bool(suspicious), "n": int(len(idx))}
        in_small = clusters == small
        band = silhouette if relative_size <= self.size_threshold else silhouette - 2.0
        tie_break = 1e-6 * (1.0 - sample_silhouette) / 2.0
        scores[idx[in_small]] = band - tie_break[in_small]
        scores[idx[~in_small]] = -3.0 - tie_break[~in_small]

    def _auto_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        # the tie-break only lowers scores, so nothing outside a suspicious class can pass
        return self._silhouette_threshold()

    def _silhouette_threshold(self) -> float:
        if self.silhouette_threshold is None:
            return DEFAULT_SILHOUETTE_THRESHOLD[self.reducer]
        return float(self.silhouette_threshold)

    def _reduce(self, rows: np.ndarray) -> np.ndarray | None:
        """(n, D) -> (n, k) with k <= n_components, or None if the class has no variance."""
        pca = PCA(n_components=min(int(self.n_components), rows.shape[1], len(rows) - 1),
                  random_state=self.random_state)
        projected = pca.fit_transform(rows)
        # drop directions without variance (dead ReLU units): ICA would divide by zero on them
        keep = pca.explained_variance_ > 1e-10 * max(pca.explained_variance_.max(), 1e-300)
        if not keep.any() or pca.explained_variance_.max() <= 0:
            return None
        projected = projected[:, keep]
        if self.reducer == "pca":
            return projected
        with warnings.catch_warnings():
            # an unconverged FastICA still returns a valid whitened rotation
            warnings.simplefilter("ignore", ConvergenceWarning)
            return FastICA(n_components=projected.shape[1], whiten="unit-variance", max_iter=400,
                           random_state=self.random_state).fit_transform(projected)


def sampled_silhouette(Z: np.ndarray, clusters: np.ndarray, *, sample_size: int | None,
                       random_state: int = 0) -> np.ndarray:
    """Silhouette coefficients (n,) of every row of ``Z`` (n, k) under the 2-cluster split ``clusters`` (n,).

    With ``sample_size=None`` or ``n <= sample_size``: scikit-learn's exact ``silhouette_samples``.
    Otherwise ``a_i`` and ``b_i`` (the mean distances from row ``i`` to its own and to the other
    cluster) are averaged over a reference sample of ``sample_size`` rows drawn without replacement,
    half from each cluster (all of a cluster smaller than that, the rest from the other), ``i`` itself
    left out: unbiased estimates of the exact means, for O(n * sample_size) distances instead of O(n^2).
    A row alone in its cluster scores 0, as in scikit-learn.
    """
    n = len(Z)
    if sample_size is None or n <= sample_size:
        return silhouette_samples(Z, clusters)
    rng = np.random.default_rng(random_state)
    counts = np.bincount(clusters, minlength=2)
    # half the sample per cluster (a small cluster is then taken whole), the unused part to the other
    half = sample_size // 2
    take = np.minimum(counts, np.maximum(half, sample_size - counts[::-1]))
    reference = np.sort(np.concatenate([rng.choice(np.flatnonzero(clusters == c), int(take[c]), replace=False)
                                        for c in range(2)]))
    # float32 blocks: the cost is memory traffic over the (n, m) distances, and a mean of distances needs
    # no more precision; rows centred so that |z|^2 + |r|^2 - 2 z.r does not cancel
    Zc = (Z - Z.mean(axis=0)).astype(np.float32)
    member = np.eye(2, dtype=np.float32)[clusters[reference]]  # (m, 2) one-hot of the reference rows' clusters
    R = Zc[reference]
    # one product gives |r|^2 - 2 z.r: rows [z, 1] against [-2 r, |r|^2]; blocks of 256 rows keep the
    # (256, m) distances in cache through the three passes over them
    R_aug = np.hstack([-2.0 * R, (R * R).sum(axis=1, keepdims=True)]).astype(np.float32)
    Z_aug = np.hstack([Zc, np.ones((n, 1), dtype=np.float32)])
    z2 = (Zc * Zc).sum(axis=1)
    sums = np.empty((n, 2))
    for start in range(0, n, 256):
        d = Z_aug[start:start + 256] @ R_aug.T
        d += z2[start:start + 256, None]
        np.sqrt(np.maximum(d, 0.0, out=d), out=d)
        sums[start:start + 256] = d @ member
    in_reference = np.zeros(n, dtype=bool)
    in_reference[reference] = True
    own = clusters
    own_count = take[own] - in_reference  # a row's zero distance to itself is not a neighbour
    a = sums[np.arange(n), own] / np.maximum(own_count, 1)
    b = sums[np.arange(n), 1 - own] / take[1 - own]
    s = (b - a) / np.maximum(np.maximum(a, b), 1e-300)
    return np.where((counts[own] > 1) & (own_count > 0), s, 0.0)
