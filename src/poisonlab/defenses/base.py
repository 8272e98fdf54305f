"""The detector base: scikit-learn estimator conventions, PyOD's contamination -> threshold rule.

A detector is fitted on features ``X`` (N, D) and the (possibly poisoned) labels ``y`` (N,), and
sets ``scores_`` (higher = more suspicious), ``threshold_`` and ``flagged_ = scores_ > threshold_``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from poisonlab.errors import PoisonlabError, PoisonlabWarning


class Detector(BaseEstimator):
    """Base class. Subclasses store their keyword arguments in ``__init__`` (nothing else), implement
    ``_score(X, y) -> scores`` and ``_check_params()`` (validate their own parameters, then call
    ``super()._check_params()``); they may override ``_auto_threshold``.

    ``contamination``: a float in [0, 0.5] flags that share of samples with the highest scores
    (0 flags nothing); ``"auto"`` lets the detector decide without knowing the poison rate
    (see each detector's docstring; the default rule is median + 3 * 1.4826 * MAD of the scores).
    """

    contamination: float | str = "auto"

    def check_params(self) -> "Detector":
        """Validate every constructor parameter without data; return ``self``.

        Raises :class:`~poisonlab.errors.PoisonlabError` with a one-line message naming the first bad
        parameter. ``fit`` calls it first; :func:`poisonlab.defenses.make_detector` calls it on creation.
        """
        self._check_params()
        return self

    def _check_params(self) -> None:
        contamination = getattr(self, "contamination", "auto")
        if not (isinstance(contamination, str) and contamination == "auto"):
            check_real("contamination", contamination, low=0.0, high=0.5, alternative="'auto'")

    def fit(self, X: np.ndarray, y: np.ndarray) -> "Detector":
        self.check_params()
        X, y = check_features(X, y)
        contamination = getattr(self, "contamination", "auto")
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
    """The threshold that flags the ``round(contamination * N)`` highest scores (ties at the cut are all
    kept, so they may flag fewer)."""
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
        warnings.warn(msg, PoisonlabWarning, stacklevel=2)


def check_integer(name: str, value: Any, *, minimum: int = 1, allow_none: bool = False) -> None:
    """Raise :class:`PoisonlabError` unless ``value`` is an integer ``>= minimum`` (not a bool), or ``None``
    where allowed; the message names the parameter."""
    if allow_none and value is None:
        return
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum:
        return
    wanted = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
    raise PoisonlabError(f"{name} must be {wanted}{' or None' if allow_none else ''}, got {value!r}")


def check_real(name: str, value: Any, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False, allow_none: bool = False,
               alternative: str | None = None) -> None:
    """Raise :class:`PoisonlabError` unless ``value`` is a real number (not a bool, not NaN) within the bounds
    (closed unless ``*_open``), or ``None`` where allowed; ``alternative`` names another accepted value for
    the message (e.g. ``"'auto'"``)."""
    if allow_none and value is None:
        return
    if (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)) and not math.isnan(value)
            and (low is None or (value > low if low_open else value >= low))
            and (high is None or (value < high if high_open else value <= high))):
        return
    if low is not None and high is not None:
        wanted = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        wanted = f"a number {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        wanted = f"a number {'<' if high_open else '<='} {high:g}"
    else:
        wanted = "a number"
    others = [text for text in (alternative, "None" if allow_none else None) if text]
    raise PoisonlabError(f"{name} must be {' or '.join([*others, wanted])}, got {value!r}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise :class:`PoisonlabError` unless ``value`` is one of the strings ``choices``."""
    if not (isinstance(value, str) and value in choices):
        raise PoisonlabError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def check_random_state(name: str, value: Any) -> None:
    """Raise :class:`PoisonlabError` unless ``value`` is ``None`` or an integer seed in [0, 2**32)."""
    if value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool)
                         and 0 <= value < 2**32):
        return
    raise PoisonlabError(f"{name} must be None or an integer seed in [0, 2**32), got {value!r}")


def check_n_jobs(name: str, value: Any) -> None:
    """Raise :class:`PoisonlabError` unless ``value`` is ``None`` or a non-zero integer (joblib's convention)."""
    if value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value != 0):
        return
    raise PoisonlabError(f"{name} must be None or a non-zero integer, got {value!r}")
