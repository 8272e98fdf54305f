"""Confident learning (Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating Uncertainty
in Dataset Labels"), the method behind cleanlab, written from the paper.

``find_label_issues`` is the functional core for users who bring their own out-of-sample
``pred_probs``; the ``confident-learning`` detector makes them itself from the features, by
leave-one-out neighbour votes (default) or by cross-validating a logistic regression.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from poisonlab.defenses.base import Detector, check_choice, check_integer, check_random_state, check_real
from poisonlab.defenses.neighbours import neighbour_votes, search_space
from poisonlab.errors import PoisonlabError

FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given")
PROBABILITIES = ("knn", "logistic")


def confident_joint(labels: np.ndarray, pred_probs: np.ndarray, *, calibrate: bool = True) -> np.ndarray:
    """The confident joint ``C[given, true]`` (K, K) of counts.

    Class ``j``'s threshold ``t_j`` is the mean of ``pred_probs[:, j]`` over samples labelled ``j``.
    A sample counts towards ``C[labels[i], j]`` for the ``j`` with the highest probability among the
    classes whose probability reaches their threshold; samples reaching no threshold are not counted.
    ``calibrate=True`` rescales each row to the number of samples with that given label (Eq. 2 of
    the paper) and rounds it keeping the row total, so ``C.sum() == N``.

    Parameters
    ----------
    labels : np.ndarray (N,) int in [0, K)
    pred_probs : np.ndarray (N, K) float
        Out-of-sample predicted probabilities, rows summing to 1.
    calibrate : bool

    Returns
    -------
    np.ndarray (K, K) int64
    """
    labels, pred_probs = _check_inputs(labels, pred_probs)
    n_classes = pred_probs.shape[1]
    thresholds = _class_thresholds(labels, pred_probs)
    # the small slack keeps a sample whose probability equals the mean from dropping out on rounding
    above = pred_probs >= thresholds - 1e-6
    has_candidate = above.any(axis=1)
    guessed = np.where(above, pred_probs, -np.inf).argmax(axis=1)
    joint = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(joint, (labels[has_candidate], guessed[has_candidate]), 1)
    if not calibrate:
        return joint
    label_counts = np.bincount(labels, minlength=n_classes)
    row_sums = np.maximum(joint.sum(axis=1, keepdims=True), 1)
    scaled = joint / row_sums * label_counts[:, None]
    # a given label no sample reached keeps its whole count on the diagonal
    empty = joint.sum(axis=1) == 0
    scaled[empty] = 0.0
    scaled[empty, empty.nonzero()[0]] = label_counts[empty]
    return np.vstack([_round_keeping_total(row) for row in scaled])


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray, *,
                      filter_by: str = "prune_by_noise_rate", min_examples_per_class: int = 1) -> np.ndarray:
    """The bool mask (N,) of samples whose given label is likely wrong.

    Parameters
    ----------
    labels : np.ndarray (N,) int in [0, K)
        The given (possibly noisy) labels.
    pred_probs : np.ndarray (N, K) float
        Out-of-sample predicted probabilities (e.g. from cross-validation), rows summing to 1.
    filter_by : {"prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given"}
        - ``"prune_by_noise_rate"``: for every off-diagonal cell ``(i, j)`` of the calibrated confident
          joint, flag the ``C[i, j]`` samples labelled ``i`` with the largest margin
          ``pred_probs[:, j] - pred_probs[:, i]`` (the paper's PBNR, cleanlab's default).
        - ``"prune_by_class"``: for every given label ``i``, flag the ``sum_j!=i C[i, j]`` samples
          labelled ``i`` with the lowest self-confidence ``pred_probs[:, i]``.
        - ``"both"``: flagged by both of the above.
        - ``"confident_learning"``: the off-diagonal of the (uncalibrated) confident joint, i.e.
          samples confidently counted as another class.
        - ``"predicted_neq_given"``: argmax of ``pred_probs`` differs from the label.
        The three pruning rules never flag a sample whose argmax equals its label.
    min_examples_per_class : int
        The pruning rules leave at least this many samples of each given label.

    Returns
    -------
    np.ndarray (N,) bool
    """
    check_choice("filter_by", filter_by, FILTERS)
    check_integer("min_examples_per_class", min_examples_per_class, minimum=0)
    labels, pred_probs = _check_inputs(labels, pred_probs)
    predicted = pred_probs.argmax(axis=1)
    if filter_by == "predicted_neq_given":
        return predicted != labels
    if filter_by == "confident_learning":
        thresholds = _class_thresholds(labels, pred_probs)
        above = pred_probs >= thresholds - 1e-6
        guessed = np.where(above, pred_probs, -np.inf).argmax(axis=1)
        return above.any(axis=1) & (guessed != labels)

    joint = confident_joint(labels, pred_probs, calibrate=True)
    prune_counts = _keep_at_least(joint, int(min_examples_per_class))
    rows = np.arange(len(labels))
    self_confidence = pred_probs[rows, labels]
    by_noise_rate = np.zeros(len(labels), dtype=bool)
    by_class = np.zeros(len(labels), dtype=bool)
    for given in range(joint.shape[0]):
        members = np.flatnonzero(labels == given)
        if filter_by in ("prune_by_noise_rate", "both"):
            for true in range(joint.shape[0]):
                n_prune = prune_counts[given, true]
                if true == given or n_prune == 0:
                    continue
                margin = pred_probs[members, true] - pred_probs[members, given]
                by_noise_rate[members[_top(margin, n_prune)]] = True
        if filter_by in ("prune_by_class", "both"):
            n_prune = prune_counts[given].sum() - prune_counts[given, given]
            if n_prune:
                by_class[members[_top(-self_confidence[members], n_prune)]] = True
    issues = {"prune_by_noise_rate": by_noise_rate, "prune_by_class": by_class,
              "both": by_noise_rate & by_class}[filter_by]
    # a sample the model itself assigns to its given label is not a label issue
    return issues & (predicted != labels)


class ConfidentLearning(Detector):
    """Confident learning on features: out-of-sample probabilities + :func:`find_label_issues`.

    ``pred_probs_`` (N, K) are out-of-sample predicted probabilities of the labels:

    - ``probabilities="knn"`` (default): leave-one-out neighbour votes, the share of each label among a
      sample's ``n_neighbors`` nearest neighbours (itself excluded) after a PCA to ``n_components``
      dimensions; one exact neighbour search (:mod:`poisonlab.defenses.neighbours`);
    - ``"logistic"``: ``n_folds``-fold stratified cross-validation (shuffled with ``random_state``) of a
      standardised multinomial logistic regression, ``n_folds`` fits on one BLAS thread.

    ``self_confidence_`` is the predicted probability of the given label and ``label_issues_`` the
    mask of :func:`find_label_issues` with ``filter_by``.

    ``scores_ = (1 - self_confidence_) + 2 * label_issues_``: within the flagged and within the kept
    samples the order is by self-confidence (cleanlab's ranking); every flagged sample scores above
    every kept one. ``contamination="auto"`` flags ``scores_ > 1.5``, i.e. exactly the confident
    learning label issues; the rule estimates the noise rate from the confident joint and needs no
    poison rate. A float ``contamination`` flags that share of the highest scores (issues first).

    Parameters
    ----------
    contamination : float or "auto"
    filter_by : str
        One of :data:`FILTERS`; see :func:`find_label_issues`.
    probabilities : {"knn", "logistic"}
    n_neighbors : int
        Neighbours of the ``"knn"`` vote (capped at ``N - 1``).
    n_components : int or None
        PCA dimensions before the neighbour search (``None``: the features as they are).
    n_folds : int
        ``"logistic"``: cross-validation folds (>= 2; capped at the size of the smallest class).
    C : float
        ``"logistic"``: inverse regularisation strength.
    max_iter : int
        ``"logistic"``: iterations of the solver.
    random_state : int
        Seed of the PCA and of the fold split.
    """

    def __init__(self, *, contamination="auto", filter_by: str = "prune_by_noise_rate", probabilities: str = "knn",
                 n_neighbors: int = 20, n_components: int | None = 10, n_folds: int = 5, C: float = 1.0,
                 max_iter: int = 200, random_state: int = 0):
        self.contamination = contamination
        self.filter_by = filter_by
        self.probabilities = probabilities
        self.n_neighbors = n_neighbors
        self.n_components = n_components
        self.n_folds = n_folds
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        check_choice("filter_by", self.filter_by, FILTERS)
        check_choice("probabilities", self.probabilities, PROBABILITIES)
        check_integer("n_neighbors", self.n_neighbors)
        check_integer("n_components", self.n_components, allow_none=True)
        check_integer("n_folds", self.n_folds, minimum=2)
        check_real("C", self.C, low=0.0, low_open=True)
        check_integer("max_iter", self.max_iter)
        check_random_state("random_state", self.random_state)

    def _score(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        classes, y_index = np.unique(y, return_inverse=True)
        smallest = int(np.bincount(y_index).min())
        if smallest < 2:
            raise PoisonlabError("confident learning needs at least 2 samples of every class")
        if self.probabilities == "knn":
            pred_probs = knn_probabilities(X, y_index, int(self.n_neighbors), n_components=self.n_components,
                                           random_state=self.random_state)
        else:
            pred_probs = self._logistic_probabilities(X, y_index, smallest)
        self.pred_probs_ = pred_probs
        self.self_confidence_ = pred_probs[np.arange(len(y)), y_index]
        self.label_issues_ = find_label_issues(y_index, pred_probs, filter_by=self.filter_by)
        return (1.0 - self.self_confidence_) + 2.0 * self.label_issues_

    def _logistic_probabilities(self, X: np.ndarray, y_index: np.ndarray, smallest: int) -> np.ndarray:
        folds = StratifiedKFold(n_splits=min(int(self.n_folds), smallest), shuffle=True,
                                random_state=self.random_state)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter))
        # one thread: on a busy 2-core machine the solver ran tens of times slower with the default
        # BLAS threads (see docs/measurements.md)
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            # an unconverged solver still gives usable probabilities; more iterations cost time
            warnings.simplefilter("ignore", ConvergenceWarning)
            return cross_val_predict(model, X.astype(np.float64), y_index, cv=folds, method="predict_proba")

    def _auto_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        return 1.5


def knn_probabilities(X: np.ndarray, y_index: np.ndarray, k: int, *, n_components: int | None = None,
                      random_state: int = 0) -> np.ndarray:
    """Leave-one-out label probabilities (N, K): the share of each label index among every sample's ``k``
    nearest neighbours (itself excluded), after a PCA of ``X`` (N, D) to ``n_components`` dimensions."""
    k = min(k, len(X) - 1)
    return neighbour_votes(search_space(X, n_components, random_state=random_state), y_index, k) / float(k)


def _check_inputs(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    if pred_probs.ndim != 2 or pred_probs.shape[1] < 2:
        raise PoisonlabError(f"pred_probs must be (N, K) with K >= 2, got shape {pred_probs.shape}")
    if labels.shape != (len(pred_probs),):
        raise PoisonlabError(f"labels must have shape ({len(pred_probs)},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise PoisonlabError(f"labels must be integers, got {labels.dtype}")
    if len(labels) and (labels.min() < 0 or labels.max() >= pred_probs.shape[1]):
        raise PoisonlabError(f"labels must lie in [0, {pred_probs.shape[1]})")
    if not np.isfinite(pred_probs).all() or (pred_probs < 0).any():
        raise PoisonlabError("pred_probs must be finite and non-negative")
    return labels.astype(np.int64), pred_probs


def _class_thresholds(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """t_j (K,): mean predicted probability of class j over samples labelled j (inf if none)."""
    n_classes = pred_probs.shape[1]
    counts = np.bincount(labels, minlength=n_classes)
    sums = np.zeros(n_classes)
    np.add.at(sums, labels, pred_probs[np.arange(len(labels)), labels])
    # a class nobody carries cannot be confidently assigned
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.inf)


def _round_keeping_total(row: np.ndarray) -> np.ndarray:
    """Largest-remainder rounding: integers whose sum is ``round(row.sum())``."""
    floors = np.floor(row).astype(np.int64)
    missing = int(round(row.sum())) - int(floors.sum())
    if missing > 0:
        floors[np.argsort(-(row - floors), kind="stable")[:missing]] += 1
    return floors


def _keep_at_least(joint: np.ndarray, n_keep: int) -> np.ndarray:
    """Shrink each row's off-diagonal so at least ``n_keep`` samples of that given label survive."""
    prune = joint.copy()
    for given in range(len(prune)):
        total = prune[given].sum()
        off = total - prune[given, given]
        allowed = max(total - n_keep, 0)
        if off > allowed:
            off_row = np.delete(prune[given], given).astype(np.float64)
            shrunk = _round_keeping_total(off_row * allowed / off)
            prune[given] = np.insert(shrunk, given, total - shrunk.sum())
    return prune


def _top(values: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` largest values (stable order on ties, so results are reproducible)."""
    return np.argsort(-values, kind="stable")[:n]
