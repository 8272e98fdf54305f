"""Detection metrics: the threshold-free views (curves on fixed grids, the oracle F1 at the true rate)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_auc_score

from poisonlab.defenses.metrics import CURVE_POINTS, curve_grid, detection_metrics, f1_at_rate, pr_curve, roc_tpr


def noisy_scores(seed: int = 0, n: int = 1000, rate: float = 0.1):
    rng = np.random.default_rng(seed)
    is_poison = np.zeros(n, dtype=bool)
    is_poison[rng.choice(n, int(rate * n), replace=False)] = True
    return is_poison, rng.normal(size=n) + 2.0 * is_poison


def test_perfect_and_reversed_rankings():
    is_poison = np.r_[np.ones(10, dtype=bool), np.zeros(90, dtype=bool)]
    perfect = np.r_[np.ones(10), np.zeros(90)]
    m = detection_metrics(is_poison, perfect > 0.5, perfect)
    assert m["f1_at_true_rate"] == 1.0 and m["average_precision"] == 1.0 and m["roc_auc"] == 1.0
    assert m["pr_precision"] == [1.0] * CURVE_POINTS and m["roc_tpr"] == [1.0] * CURVE_POINTS
    assert f1_at_rate(is_poison, -perfect) == 0.0


def test_f1_at_rate_flags_exactly_the_poison_count_and_breaks_ties_by_index():
    is_poison = np.zeros(20, dtype=bool)
    is_poison[[1, 5]] = True
    scores = np.zeros(20)  # all tied: the two lowest indices are flagged
    assert f1_at_rate(is_poison, scores) == 0.5
    assert f1_at_rate(np.zeros(5, dtype=bool), np.arange(5.0)) is None


def test_curves_are_monotone_envelopes_on_the_grid():
    is_poison, scores = noisy_scores()
    precision = pr_curve(is_poison, scores)
    tpr = roc_tpr(is_poison, scores)
    assert precision.shape == tpr.shape == (CURVE_POINTS,) and np.allclose(curve_grid()[[0, -1]], [0, 1])
    assert np.all(np.diff(precision) <= 1e-12) and np.all(np.diff(tpr) >= -1e-12)
    assert precision[0] == 1.0 and tpr[-1] == 1.0
    # the envelope lies on or above every achievable (recall, precision) point
    p, r, _ = precision_recall_curve(is_poison, scores)
    for ri, pi in zip(r, p):
        assert precision[np.searchsorted(curve_grid(), ri, side="right") - 1] >= pi - 1e-12
    # the step ROC's area approaches the exact ROC-AUC from below
    area = float(np.mean(tpr[1:]))
    assert roc_auc_score(is_poison, scores) - 0.02 <= area <= roc_auc_score(is_poison, scores) + 0.01


def test_undefined_cases_are_none_and_json_ready():
    m = detection_metrics(np.zeros(10, dtype=bool), np.zeros(10, dtype=bool), np.arange(10.0))
    assert all(m[k] is None for k in ("roc_auc", "average_precision", "f1_at_true_rate", "pr_precision", "roc_tpr"))
    is_poison, scores = noisy_scores(1)
    m = detection_metrics(is_poison, scores > 1, scores)
    assert all(isinstance(v, float) for v in m["pr_precision"] + m["roc_tpr"])
    assert detection_metrics(is_poison, scores > 1)["pr_precision"] is None
