"""Detection quality against the ground-truth poison mask: at the detector's threshold, and threshold-free.

The threshold-free views show how well the scores rank poisons above clean samples, apart from the rule
that turns scores into a decision: ROC-AUC, average precision, PR and ROC curves on fixed grids (so the
curves of several seeds average point by point), and the F1 of flagging exactly the true number of
poisons (an oracle diagnostic: no real defender knows that number).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from poisonlab.defenses.base import flag_top

# recall (PR) and false-positive-rate (ROC) grid of the stored curves: 0, 0.01, ..., 1
CURVE_POINTS = 101


def curve_grid() -> np.ndarray:
    """The grid (CURVE_POINTS,) in [0, 1] on which ``pr_precision`` and ``roc_tpr`` are given."""
    return np.linspace(0.0, 1.0, CURVE_POINTS)


def detection_metrics(is_poison: np.ndarray, flagged: np.ndarray, scores: np.ndarray | None = None) -> dict[str, Any]:
    """Precision, recall, F1, counts, and (from ``scores``) the threshold-free views.

    Parameters
    ----------
    is_poison : np.ndarray (N,) bool
        Ground truth.
    flagged : np.ndarray (N,) bool
        The detector's decision (True = removed).
    scores : np.ndarray (N,), optional
        Suspicion scores (higher = more suspicious).

    Returns
    -------
    dict
        ``precision, recall, f1, removed, poisons_removed, clean_removed, poisons_kept, n_poison,
        n_samples``, and from ``scores``: ``roc_auc``, ``average_precision``, ``f1_at_true_rate`` (see
        :func:`f1_at_rate`), ``pr_precision`` (interpolated precision at the recalls of
        :func:`curve_grid`, see :func:`pr_curve`) and ``roc_tpr`` (true-positive rate at its
        false-positive rates, see :func:`roc_tpr`).

    Precision is ``None`` when nothing is flagged; recall and F1 are ``None`` when there is no poison
    (nothing to find: a score of 0 would read as a failed detector); the score-based values are ``None``
    without ``scores`` or when only one class is present.
    """
    is_poison = np.asarray(is_poison, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    tp = int((flagged & is_poison).sum())
    fp = int((flagged & ~is_poison).sum())
    fn = int((~flagged & is_poison).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * tp / (2 * tp + fp + fn)) if tp + fn else None
    ranked: dict[str, Any] = {"roc_auc": None, "average_precision": None, "f1_at_true_rate": None,
                              "pr_precision": None, "roc_tpr": None}
    if scores is not None and 0 < is_poison.sum() < len(is_poison):
        scores = np.asarray(scores, dtype=np.float64)
        ranked = {"roc_auc": float(roc_auc_score(is_poison, scores)),
                  "average_precision": float(average_precision_score(is_poison, scores)),
                  "f1_at_true_rate": f1_at_rate(is_poison, scores),
                  "pr_precision": _rounded(pr_curve(is_poison, scores)),
                  "roc_tpr": _rounded(roc_tpr(is_poison, scores))}
    return {
        "precision": precision, "recall": recall, "f1": f1, "roc_auc": ranked.pop("roc_auc"),
        "removed": int(flagged.sum()), "poisons_removed": tp, "clean_removed": fp,
        "poisons_kept": fn, "n_poison": int(is_poison.sum()), "n_samples": int(len(is_poison)), **ranked,
    }


def f1_at_rate(is_poison: np.ndarray, scores: np.ndarray) -> float | None:
    """F1 of flagging exactly as many samples as there are poisons, highest scores first (ties by the lower
    index, as a numeric ``contamination`` does). Precision and recall are then equal, and so is F1.

    An oracle diagnostic: it knows the poison rate, which a defender does not. ``None`` without poisons.
    """
    is_poison = np.asarray(is_poison, dtype=bool)
    n_poison = int(is_poison.sum())
    if n_poison == 0:
        return None
    _, flagged = flag_top(scores, n_poison)
    return float((flagged & is_poison).sum() / n_poison)


def pr_curve(is_poison: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Interpolated precision (CURVE_POINTS,) at recall ``r`` of :func:`curve_grid`: the best precision of
    any threshold whose recall is at least ``r`` (the usual monotone PR envelope; 1 at recall 0)."""
    precision, recall, _ = precision_recall_curve(np.asarray(is_poison, dtype=bool), scores)
    order = np.argsort(recall, kind="stable")
    recall, precision = recall[order], precision[order]
    # best precision at recall >= r: a running maximum from the high-recall end
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, curve_grid(), side="left")
    return envelope[np.minimum(index, len(envelope) - 1)]


def roc_tpr(is_poison: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """True-positive rate (CURVE_POINTS,) at each false-positive rate of :func:`curve_grid`: the best TPR of
    any threshold whose FPR does not exceed it (the ROC curve as a step function)."""
    fpr, tpr, _ = roc_curve(np.asarray(is_poison, dtype=bool), scores)
    index = np.searchsorted(fpr, curve_grid(), side="right") - 1
    return tpr[np.maximum(index, 0)]


def _rounded(values: np.ndarray) -> list[float]:
    # four decimals keep a results file small; the curves are for reading and plotting
    return [round(float(v), 4) for v in values]


__all__ = ["CURVE_POINTS", "curve_grid", "detection_metrics", "f1_at_rate", "pr_curve", "roc_tpr"]
