"""The reference libraries' detectors, called on the same features as poisonlab's (benchmarks only).

ART (``adversarial-robustness-toolbox``) and cleanlab are not poisonlab dependencies: install them in the
benchmark's environment (``pip install adversarial-robustness-toolbox cleanlab``; neither defence below
needs ART's torch or tensorflow extras). Each function takes features ``X`` (N, D) float32 and labels
``y`` (N,) and returns the bool mask of flagged samples and a score (higher = more suspicious, ``None``
where the library gives none), so the benchmarks can time and score them like a poisonlab detector.

- :func:`art_activation_clustering`: ``ActivationDefence`` on the given activations (PCA to 10 dims,
  2-means per class, Chen et al.'s flags), ``cluster_analysis`` ``"smaller"`` (ART's default) or
  ``"silhouette-scores"``; ART's clustering step without its own forward pass.
- :func:`art_spectral_signatures`: ``SpectralSignatureDefense`` (Tran et al.), which removes
  ``eps_multiplier * expected_pp_poison`` of every class.
- :func:`cleanlab_knn`: ``cleanlab.filter.find_label_issues`` on out-of-fold kNN probabilities
  (5-fold ``KNeighborsClassifier``).
- :func:`cleanlab_softmax`: ``find_label_issues`` on given probabilities (the feature model's softmax).
- :func:`knn_vote`: the plain 10-d kNN label vote (PCA to 10 dims, scikit-learn neighbours, flag a
  label outvoted by another), the job ``deep-knn`` and ``knn`` do.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

try:
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense
except ImportError:  # the benchmark reports the reference as missing
    ActivationDefence = SpectralSignatureDefense = None
try:
    from cleanlab.filter import find_label_issues as cleanlab_find_label_issues
except ImportError:
    cleanlab_find_label_issues = None


def available() -> dict[str, bool]:
    """Which reference libraries are importable."""
    return {"art": ActivationDefence is not None, "cleanlab": cleanlab_find_label_issues is not None}


class FeatureClassifier:
    """The part of an ART classifier the two defences call: its "activations" are the inputs themselves."""

    layer_names = ["features"]

    def __init__(self, n_classes: int) -> None:
        self.nb_classes = n_classes

    def get_activations(self, x, layer=None, batch_size=128, framework=False):
        return np.asarray(x)


def _one_hot(y: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[y]


def art_activation_clustering(X: np.ndarray, y: np.ndarray, *, analysis: str = "smaller",
                              seed: int = 0) -> tuple[np.ndarray, None]:
    """ART's activation clustering on ``X``: PCA to 10 dims, 2-means per class, ``analysis`` flags."""
    n_classes = int(y.max()) + 1
    np.random.seed(seed)  # ART's KMeans has no random_state; seeding NumPy's global makes it repeatable
    defence = ActivationDefence(FeatureClassifier(n_classes), X, _one_hot(y, n_classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, is_clean = defence.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA", cluster_analysis=analysis)
    return np.asarray(is_clean) == 0, None


def art_spectral_signatures(X: np.ndarray, y: np.ndarray, *, expected_rate: float,
                            eps_multiplier: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """ART's spectral signatures on ``X``: flags ``eps_multiplier * expected_rate`` of every class."""
    n_classes = int(y.max()) + 1
    defence = SpectralSignatureDefense(FeatureClassifier(n_classes), X, _one_hot(y, n_classes),
                                       expected_pp_poison=expected_rate, eps_multiplier=eps_multiplier,
                                       batch_size=len(X))
    report, is_clean = defence.detect_poison()
    scores = np.zeros(len(X))
    if report:
        idx = np.fromiter(report.keys(), dtype=np.int64)
        scores[idx] = np.fromiter(report.values(), dtype=np.float64)
    return np.asarray(is_clean) == 0, scores


def cleanlab_knn(X: np.ndarray, y: np.ndarray, *, n_neighbors: int = 10, n_folds: int = 5,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's ``find_label_issues`` (its default ``prune_by_noise_rate``) on 5-fold kNN probabilities;
    the score is one minus the self-confidence."""
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    pred_probs = cross_val_predict(KNeighborsClassifier(n_neighbors=n_neighbors), X, y, cv=folds,
                                   method="predict_proba")
    issues = cleanlab_find_label_issues(labels=y, pred_probs=pred_probs)
    return np.asarray(issues, dtype=bool), 1.0 - pred_probs[np.arange(len(y)), y]


def cleanlab_softmax(probabilities: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's ``find_label_issues`` on ``probabilities`` (N, K), e.g. the softmax of the model whose
    activations the other methods see; the score is one minus the self-confidence."""
    issues = cleanlab_find_label_issues(labels=y, pred_probs=probabilities)
    return np.asarray(issues, dtype=bool), 1.0 - probabilities[np.arange(len(y)), y]


def knn_vote(X: np.ndarray, y: np.ndarray, *, n_neighbors: int = 50, n_components: int = 10,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """PCA to ``n_components``, ``n_neighbors`` nearest neighbours (itself excluded), flag a sample whose
    own label is outvoted by another label; the score is the vote margin."""
    Z = PCA(n_components=n_components, random_state=seed).fit_transform(X)
    neighbours = NearestNeighbors(n_neighbors=n_neighbors).fit(Z).kneighbors(return_distance=False)
    n_labels = int(y.max()) + 1
    flat = (np.arange(len(y))[:, None] * n_labels + y[neighbours]).ravel()
    votes = np.bincount(flat, minlength=len(y) * n_labels).reshape(len(y), n_labels).astype(np.float64)
    own = votes[np.arange(len(y)), y]
    votes[np.arange(len(y)), y] = -1
    margin = (votes.max(axis=1) - own) / n_neighbors
    return margin > 0, margin
