"""The detector base: scikit-learn estimator conventions, PyOD's contamination -> threshold rule.

A detector is fitted on features ``X`` (N, D) and the (possibly poisoned) labels ``y`` (N,), and
sets ``scores_`` (higher = more suspicious), ``threshold_`` and ``flagged_ = scores_ > threshold_``.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator

from poisonlab.errors import PoisonlabError


class Detector(BaseEstimator):
    """Base class. Subclasses store their keyword arguments in ``__init__`` (nothing else) and
    implement ``_score(X, y) -> scores``; they may override ``_auto_threshold``.

    ``contamination``: a float in [0, 0.5] flags that share of samples with the highest scores
    (0 flags nothing); ``"auto"`` lets the detector decide without knowing the poison rate
    (see each detector's docstring; the default rule is median + 3 * 1.4826 * MAD of the scores).
    """

    contamination: float | str = "auto"

    def fit(self, X: np.ndarray, y: np.ndarray) -> "Detector":
        X, y = check_features(X, y)
        contamination = getattr(self, "contamination", "auto")
        if contamination != "auto":
            if isinstance(contamination, str) or not 0 <= float(contamination) <= 0.5:
                raise PoisonlabError(f"contamination must be 'auto' or in [0, 0.5], got {contamination!r}")
        scores = np.asarray(self._score(X, y), dtype=np.float64)
        if scores.shape != (len(X),) or not np.isfinite(scores).all():
            raise AssertionError(f"{type(self).__name__}._score returned bad scores")
        self.scores_ = scores
        self.threshold_ = (self._auto_threshold(scores, y) if contamination == "auto"
                           else contamination_threshold(scores, float(contamination)))
        self.flagged_ = scores > self.threshold_
        self.n_features_in_ = X.shape[1]
        return self

    def fit_predict(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The bool mask of flagged (suspected poisoned) samples."""
        return self.fit(X, y).flagged_

    def _score(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _auto_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        return mad_threshold(scores)


def contamination_threshold(scores: np.ndarray, contamination: float) -> float:
    """The threshold that flags the ``round(contamination * N)`` highest scores (ties may add a few)."""
    n_flag = int(round(contamination * len(scores)))
    if n_flag <= 0:
        return float("inf")
    ordered = np.sort(scores)
    if n_flag >= len(scores):
        return float(np.nextafter(ordered[0], -np.inf))
    # strictly between the last kept and the first flagged score
    return float(ordered[len(scores) - n_flag - 1])


def mad_threshold(scores: np.ndarray, k: float = 3.0) -> float:
    """Robust outlier rule: median + k * 1.4826 * MAD (a normal sigma for Gaussian scores)."""
    med = float(np.median(scores))
    mad = float(np.median(np.abs(scores - med))) * 1.4826
    return med + k * max(mad, 1e-12)


def check_features(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate detector input: finite 2-D features, 1-D integer labels of the same length, >= 2 classes."""
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2:
        raise PoisonlabError(f"features must be 2-D (N, D), got shape {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise PoisonlabError(f"features have {len(X)} rows but labels have shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise PoisonlabError(f"labels must be integers, got {y.dtype}")
    if not np.isfinite(X).all():
        raise PoisonlabError("features contain NaN or inf")
    if len(np.unique(y)) < 2:
        raise PoisonlabError("labels hold one class only; detection needs at least two")
    return X.astype(np.float32, copy=False), y.astype(np.int64, copy=False)


def check_class_coverage(flagged: np.ndarray, y: np.ndarray, *, action: str = "error") -> None:
    """Refuse (or warn about) a filter that would remove every sample of some class."""
    classes = np.unique(y)
    emptied = [int(c) for c in classes if flagged[y == c].all()]
    if emptied:
        msg = f"the defense would remove every training sample of class(es) {emptied}"
        if action == "error":
            raise PoisonlabError(msg)
        warnings.warn(msg, stacklevel=2)
