"""The detector base: scikit-learn estimator conventions, PyOD's contamination -> threshold rule.

A detector is fitted on features ``X`` (N, D) and the (possibly poisoned) labels ``y`` (N,), and
sets ``scores_`` (higher = more suspicious), ``threshold_`` and ``flagged_``: ``scores_ > threshold_``
under ``contamination="auto"``; exactly ``round(contamination * N)`` samples under a numeric
``contamination`` (see :func:`flag_top_share`).
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

    ``contamination``: a float in [0, 0.5] flags exactly ``round(contamination * N)`` samples, those
    with the highest scores, ties at the cut broken by the lower index (:func:`flag_top_share`; 0 flags
    nothing); ``"auto"`` lets the detector decide without knowing the poison rate and flags
    ``scores_ > threshold_`` (see each detector's docstring; the default rule is median + 3 * 1.4826 *
    MAD of the scores).
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
        if contamination == "auto":
            self.threshold_ = float(self._auto_threshold(scores, y))
            self.flagged_ = scores > self.threshold_
        else:
            self.threshold_, self.flagged_ = flag_top_share(scores, float(contamination))
        self.n_features_in_ = X.shape[1]
        return self

    def fit_predict(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """The bool mask of flagged (suspected poisoned) samples."""
        return self.fit(X, y).flagged_

    def _score(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _auto_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        return mad_threshold(scores)


def flag_top_share(scores: np.ndarray, contamination: float) -> tuple[float, np.ndarray]:
    """The ``round(contamination * N)`` highest scores, exactly: ``(threshold, flagged)``.

    ``n = round(contamination * N)`` (Python's rounding) samples are flagged by :func:`flag_top`, so a
    detector with discrete scores flags as many as asked, and the same ones every time.

    Parameters
    ----------
    scores : np.ndarray (N,) float
    contamination : float in [0, 1]

    Returns
    -------
    threshold : float
    flagged : np.ndarray (N,) bool
    """
    return flag_top(scores, int(round(contamination * len(scores))))


def flag_top(scores: np.ndarray, n_flag: int) -> tuple[float, np.ndarray]:
    """The ``n_flag`` highest scores: ``(threshold, flagged)`` with ``flagged.sum() == n_flag`` (clipped
    to [0, N]).

    Samples are ranked by score (highest first), then by index (lowest first). ``threshold`` is the
    highest score left unflagged (``inf`` when nothing is flagged; just below the lowest score when all
    are): every score above it is flagged, and of the samples scoring exactly ``threshold`` the lowest
    indices are, as many as the count needs.
    """
    scores = np.asarray(scores, dtype=np.float64)
    flagged = np.zeros(len(scores), dtype=bool)
    if n_flag <= 0:
        return float("inf"), flagged
    if n_flag >= len(scores):
        flagged[:] = True
        return float(np.nextafter(scores.min(), -np.inf)), flagged
    # a stable sort of the negated scores keeps tied samples in index order
    order = np.argsort(-scores, kind="stable")
    flagged[order[:n_flag]] = True
    return float(scores[order[n_flag]]), flagged


def contamination_threshold(scores: np.ndarray, contamination: float) -> float:
    """The threshold of :func:`flag_top_share` (the highest score it leaves unflagged)."""
    return flag_top_share(scores, contamination)[0]


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
