"""Detection quality against the ground-truth poison mask."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score


def detection_metrics(is_poison: np.ndarray, flagged: np.ndarray, scores: np.ndarray | None = None) -> dict[str, Any]:
    """Precision, recall, F1, ROC-AUC (from ``scores``), and counts.

    Parameters
    ----------
    is_poison : np.ndarray (N,) bool
        Ground truth.
    flagged : np.ndarray (N,) bool
        The detector's decision (True = removed).
    scores : np.ndarray (N,), optional
        Suspicion scores for ROC-AUC; ``None`` gives ``roc_auc = None``.

    Precision is ``None`` when nothing is flagged; recall and F1 are ``None`` when there is no poison
    (nothing to find: a score of 0 would read as a failed detector); ROC-AUC is ``None`` when only one
    class is present.
    """
    is_poison = np.asarray(is_poison, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    tp = int((flagged & is_poison).sum())
    fp = int((flagged & ~is_poison).sum())
    fn = int((~flagged & is_poison).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * tp / (2 * tp + fp + fn)) if tp + fn else None
    roc_auc = None
    if scores is not None and 0 < is_poison.sum() < len(is_poison):
        roc_auc = float(roc_auc_score(is_poison, scores))
    return {
        "precision": precision, "recall": recall, "f1": f1, "roc_auc": roc_auc,
        "removed": int(flagged.sum()), "poisons_removed": tp, "clean_removed": fp,
        "poisons_kept": fn, "n_poison": int(is_poison.sum()), "n_samples": int(len(is_poison)),
    }
