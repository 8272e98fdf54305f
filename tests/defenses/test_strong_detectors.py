"""The stronger detectors: activation clustering, spectral signatures, deep k-NN, confident learning.

Synthetic features: one Gaussian blob per class; poisons are either flipped labels or a small
shifted sub-cluster inside one class (what a backdoor trigger does to penultimate activations).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poisonlab.defenses import detection_metrics, make_detector
from poisonlab.defenses.confident_learning import FILTERS, confident_joint, find_label_issues
from poisonlab.errors import PoisonlabError

STRONG = ("activation-clustering", "spectral", "deep-knn", "confident-learning")
N_CLASSES, PER_CLASS, DIM = 4, 150, 16


def blobs(seed: int) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """(N, DIM) float32 features, (N,) labels: one unit-variance blob per class, centres 6 apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_CLASSES, DIM))
    centres *= 6.0 / np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    return (centres[y] + rng.normal(size=(len(y), DIM))).astype(np.float32), y, rng


def flipped(seed: int, rate: float = 0.1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blobs with ``rate`` of the labels moved uniformly to another class; returns X, y_noisy, is_poison."""
    X, y, rng = blobs(seed)
    idx = rng.choice(len(y), int(rate * len(y)), replace=False)
    y_noisy = y.copy()
    y_noisy[idx] = (y[idx] + rng.integers(1, N_CLASSES, len(idx))) % N_CLASSES
    is_poison = np.zeros(len(y), dtype=bool)
    is_poison[idx] = True
    return X, y_noisy, is_poison


def backdoored(seed: int, n_poison: int = 20, shift: float = 8.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Blobs plus ``n_poison`` samples of class 0 moved ``shift`` along one direction, labelled 0."""
    X, y, rng = blobs(seed)
    trigger = rng.normal(size=DIM)
    trigger /= np.linalg.norm(trigger)
    donors = rng.choice(np.flatnonzero(y == 0), n_poison, replace=False)
    poisons = X[donors] + shift * trigger
    is_poison = np.r_[np.zeros(len(y), dtype=bool), np.ones(n_poison, dtype=bool)]
    return np.vstack([X, poisons]).astype(np.float32), np.r_[y, np.zeros(n_poison, dtype=np.int64)], is_poison


@pytest.mark.parametrize(("name", "params", "planted", "f1_floor"), [
    ("activation-clustering", {}, backdoored, 0.9),
    # ICA whitens every component, so a one-direction trigger needs few components to stand out
    ("activation-clustering", {"reducer": "ica", "n_components": 4}, backdoored, 0.9),
    ("spectral", {}, backdoored, 0.9),
    ("deep-knn", {}, flipped, 0.9),
    ("deep-knn", {"vote": "majority", "n_components": 8}, flipped, 0.9),
    ("confident-learning", {}, flipped, 0.85),
    ("confident-learning", {"filter_by": "confident_learning"}, flipped, 0.85),
])
def test_auto_rule_finds_planted_poisons(name, params, planted, f1_floor):
    X, y, is_poison = planted(1)
    detector = make_detector(name, **params).fit(X, y)
    result = detection_metrics(is_poison, detector.flagged_, detector.scores_)
    assert result["f1"] >= f1_floor, result
    assert result["roc_auc"] >= 0.95, result


@pytest.mark.parametrize("name", STRONG)
def test_auto_rule_flags_few_clean_samples(name):
    X, y, _ = blobs(2)
    detector = make_detector(name).fit(X, y)
    assert detector.flagged_.mean() <= 0.02
    if name == "activation-clustering":
        assert not any(report["suspicious"] for report in detector.class_report_.values())
        assert not detector.flagged_.any()


@pytest.mark.parametrize("name", STRONG)
@pytest.mark.parametrize("bad", ["one_d", "nan", "length", "float_labels", "one_class"])
def test_bad_input_raises(name, bad):
    X, y, _ = blobs(5)
    X, y = {"one_d": (X[:, 0], y), "nan": (np.where(X > 2, np.nan, X), y), "length": (X, y[:-1]),
            "float_labels": (X, y.astype(float)), "one_class": (X, np.zeros_like(y))}[bad]
    with pytest.raises(PoisonlabError):
        make_detector(name).fit(X, y)


@pytest.mark.parametrize(("name", "params"), [
    ("activation-clustering", {"reducer": "tsne"}),
    ("activation-clustering", {"size_threshold": 0.9}),
    ("activation-clustering", {"n_components": 0}),
    ("spectral", {"mad_k": 0}),
    ("deep-knn", {"vote": "unanimous"}),
    ("deep-knn", {"n_neighbors": 0}),
    ("deep-knn", {"n_components": 0}),
    ("confident-learning", {"filter_by": "everything"}),
    ("confident-learning", {"n_folds": 1}),
    ("spectral", {"contamination": 0.9}),
])
def test_bad_params_raise(name, params):
    X, y, _ = blobs(6)
    with pytest.raises(PoisonlabError):
        make_detector(name, **params).fit(X, y)


def test_activation_clustering_flags_only_the_small_cluster_of_the_poisoned_class():
    X, y, is_poison = backdoored(7)
    detector = make_detector("activation-clustering").fit(X, y)
    report = detector.class_report_
    assert [c for c, r in report.items() if r["suspicious"]] == [0]
    assert report[0]["relative_size"] <= 0.35
    assert set(np.unique(y[detector.flagged_])) == {0}
    assert detector.scores_[is_poison].min() > detector.scores_[~is_poison & (y != 0)].max()


def test_spectral_projection_scores_follow_tran():
    X, y, _ = backdoored(8)
    detector = make_detector("spectral").fit(X, y)
    rows = X[y == 1].astype(np.float64)
    centred = rows - rows.mean(axis=0)
    top = np.linalg.svd(centred, full_matrices=False)[2][0]
    np.testing.assert_allclose(detector.projection_scores_[y == 1], (centred @ top) ** 2, rtol=1e-6)
    assert detector.threshold_ == pytest.approx(9.0)


def test_deep_knn_plurality_flags_a_subset_of_majority():
    X, y, _ = flipped(9, rate=0.3)
    plurality = make_detector("deep-knn", n_neighbors=15).fit(X, y)
    majority = make_detector("deep-knn", n_neighbors=15, vote="majority").fit(X, y)
    assert not (plurality.flagged_ & ~majority.flagged_).any()
    np.testing.assert_allclose(majority.scores_, plurality.disagreement_)
    # a sample is flagged exactly when the plurality label of its neighbours is not its own
    np.testing.assert_array_equal(plurality.flagged_ & (plurality.neighbour_labels_ == y), False)


def _perfect_probs(y_true: np.ndarray, confidence: float = 0.9) -> np.ndarray:
    probs = np.full((len(y_true), N_CLASSES), (1 - confidence) / (N_CLASSES - 1))
    probs[np.arange(len(y_true)), y_true] = confidence
    return probs


@pytest.mark.parametrize("filter_by", FILTERS)
def test_find_label_issues_with_informative_probs_finds_exactly_the_flips(filter_by):
    rng = np.random.default_rng(10)
    y_true = rng.integers(0, N_CLASSES, 400)
    labels = y_true.copy()
    flips = rng.choice(400, 40, replace=False)
    labels[flips] = (labels[flips] + 1) % N_CLASSES
    issues = find_label_issues(labels, _perfect_probs(y_true), filter_by=filter_by)
    np.testing.assert_array_equal(issues, labels != y_true)


def test_confident_joint_counts_and_calibration():
    rng = np.random.default_rng(11)
    labels = rng.integers(0, N_CLASSES, 300)
    probs = rng.dirichlet(np.ones(N_CLASSES), size=300)
    raw = confident_joint(labels, probs, calibrate=False)
    calibrated = confident_joint(labels, probs)
    assert raw.sum() <= 300
    np.testing.assert_array_equal(calibrated.sum(axis=1), np.bincount(labels, minlength=N_CLASSES))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(10, 120), k=st.integers(2, 6))
def test_pruning_never_flags_a_sample_predicted_as_its_label(seed, n, k):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k) * 0.5, size=n)
    predicted_neq = find_label_issues(labels, probs, filter_by="predicted_neq_given")
    both = find_label_issues(labels, probs, filter_by="both")
    for filter_by in ("prune_by_noise_rate", "prune_by_class"):
        issues = find_label_issues(labels, probs, filter_by=filter_by)
        assert not (issues & ~predicted_neq).any()
        assert not (both & ~issues).any()


def test_find_label_issues_rejects_bad_input():
    probs = _perfect_probs(np.arange(8) % N_CLASSES)
    with pytest.raises(PoisonlabError):
        find_label_issues(np.arange(8) % N_CLASSES, probs, filter_by="nope")
    with pytest.raises(PoisonlabError):
        find_label_issues(np.full(8, N_CLASSES), probs)
    with pytest.raises(PoisonlabError):
        find_label_issues(np.zeros(7, dtype=int), probs)
    with pytest.raises(PoisonlabError):
        find_label_issues(np.zeros(8, dtype=int), probs[:, 0])


def test_confident_learning_scores_rank_issues_first():
    X, y, _ = flipped(12)
    detector = make_detector("confident-learning").fit(X, y)
    assert detector.pred_probs_.shape == (len(y), N_CLASSES)
    np.testing.assert_allclose(detector.pred_probs_.sum(axis=1), 1.0)
    np.testing.assert_array_equal(detector.flagged_, detector.label_issues_)
    np.testing.assert_allclose(detector.scores_[~detector.flagged_], 1 - detector.self_confidence_[~detector.flagged_])
