"""Spectral signatures (Tran, Li & Madry 2018, "Spectral Signatures in Backdoor Attacks").

A backdoor leaves a trace along the top singular direction of each class's centred
representations: the poisons sit far out on one side of it.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from poisonlab.defenses.base import Detector, check_integer, check_real
from poisonlab.defenses.pca import MAD_TO_SIGMA



class SpectralSignatures(Detector):
    """Per-class outlier score along the top singular vector of the centred activations.

    For every class ``c`` with rows ``X_c`` (n_c, D): centre them on the class mean, take the top
    right singular vector ``v`` of the centred matrix (the top eigenvector of its D x D scatter matrix,
    O(n_c D^2) and much cheaper than the SVD for n_c >> D) and project, ``p_i = (x_i - mean_c) . v``.
    Tran et al. score ``p_i ** 2`` (kept in ``projection_scores_``) and remove the ``1.5 * eps * n_c``
    highest per class, which needs the poison rate ``eps``.

    ``scores_`` are the squared robust z-scores of the projection inside each class,
    ``((p_i - median_c(p)) / (1.4826 * MAD_c(p))) ** 2``, so one threshold means the same in every
    class (raw ``p ** 2`` differs in scale between classes). Within a class the order is Tran's,
    measured from the median instead of the mean (the mean is dragged towards the poisons).

    ``contamination="auto"`` flags ``scores_ > mad_k ** 2``: a sample whose projection lies more than
    ``mad_k`` robust standard deviations from its class median (median + k * MAD rule, per class).
    With ``mad_k=3`` about 0.3% of a Gaussian clean class is flagged. A float ``contamination``
    flags that share of the highest scores over all classes, as in the base class.

    Parameters
    ----------
    contamination : float or "auto"
        See above.
    mad_k : float
        Robust standard deviations from the class median beyond which ``"auto"`` flags (> 0).
    min_class_size : int
        Classes with fewer rows get score 0 (too few to estimate a direction).
    """

    def __init__(self, *, contamination="auto", mad_k: float = 3.0, min_class_size: int = 10):
        self.contamination = contamination
        self.mad_k = mad_k
        self.min_class_size = min_class_size

    def _check_params(self) -> None:
        super()._check_params()
        check_real("mad_k", self.mad_k, low=0.0, low_open=True)
        check_integer("min_class_size", self.min_class_size, minimum=0)

    def _score(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        X = X.astype(np.float64)
        scores = np.zeros(len(X))
        projection_scores = np.zeros(len(X))
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            if len(idx) < max(int(self.min_class_size), 2):
                continue
            # one thread: on a busy machine a multi-threaded BLAS call on matrices this small waits for
            # its slowest thread (see docs/measurements.md)
            with threadpool_limits(limits=1):
                centred = X[idx] - X[idx].mean(axis=0)
                _, vectors = np.linalg.eigh(centred.T @ centred)
                proj = centred @ vectors[:, -1]
            projection_scores[idx] = proj ** 2
            med = np.median(proj)
            scale = MAD_TO_SIGMA * np.median(np.abs(proj - med))
            if scale <= 1e-12 * max(np.abs(proj).max(), 1.0):
                # more than half the class sits on one point: fall back to the standard deviation
                scale = max(proj.std(), 1e-12)
            scores[idx] = ((proj - med) / scale) ** 2
        self.projection_scores_ = projection_scores
        return scores

    def _auto_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        return float(self.mad_k) ** 2
