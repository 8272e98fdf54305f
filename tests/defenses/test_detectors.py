"""Detectors: planted poisons found, estimator contract, thresholds, bad input, run_defense."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.cluster import Birch, MiniBatchKMeans
from sklearn.decomposition import PCA

from poisonlab.data import PoisonedDataset, load_dataset
from poisonlab.defenses import DETECTORS, compute_features, detection_metrics, make_detector, run_defense
from poisonlab.defenses.cluster import ClusterDetector, cluster_disagreement, join_noise_to_nearest
from poisonlab.errors import PoisonlabError

ALL_DETECTORS = sorted(DETECTORS)
# The filtering defenses of issue 4 must find flipped labels on separable blobs almost perfectly;
# detectors built for other threats (backdoors) only need to beat chance clearly.
LABEL_NOISE_DETECTORS = ("pca", "kmeans", "pca+kmeans", "dbscan", "birch", "knn")
F1_FLOOR = {name: 0.8 for name in LABEL_NOISE_DETECTORS}
CHANCE_BEATING_FLOOR = 0.4


def planted_blobs(*, n_classes: int = 4, per_class: int = 150, dim: int = 16, rate: float = 0.1, seed: int = 0):
    """Gaussian blobs (one per class) with ``rate`` of the labels flipped to another class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (n_classes, dim))
    y_true = np.repeat(np.arange(n_classes), per_class)
    X = (centres[y_true] + rng.normal(0, 1, (len(y_true), dim))).astype(np.float32)
    y = y_true.copy()
    idx = rng.choice(len(y), int(rate * len(y)), replace=False)
    y[idx] = (y[idx] + rng.integers(1, n_classes, len(idx))) % n_classes
    is_poison = np.zeros(len(y), dtype=bool)
    is_poison[idx] = True
    return X, y.astype(np.int64), is_poison


def flip_labels(ds, *, rate: float, seed: int) -> PoisonedDataset:
    """A tiny local uniform label flip (independent of the attacks package)."""
    rng = np.random.default_rng(seed)
    y = ds.y_train.copy()
    idx = rng.choice(len(y), int(round(rate * len(y))), replace=False)
    y[idx] = (y[idx] + rng.integers(1, ds.num_classes, len(idx))) % ds.num_classes
    is_poison = np.zeros(len(y), dtype=bool)
    is_poison[idx] = True
    return PoisonedDataset(name=ds.name, x_train=ds.x_train, y_train=y, x_test=ds.x_test, y_test=ds.y_test,
                           classes=ds.classes, is_poison=is_poison, original_labels=ds.y_train.copy(),
                           attack={"name": "test-flip", "params": {"rate": rate}, "seed": seed})


@pytest.mark.parametrize("name", ALL_DETECTORS)
def test_detector_finds_planted_label_flips(name):
    X, y, is_poison = planted_blobs()
    det = make_detector(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det.fit(X, y)
    assert det.scores_.shape == (len(X),) and det.flagged_.dtype == bool
    assert np.array_equal(det.flagged_, det.scores_ > det.threshold_)
    f1 = detection_metrics(is_poison, det.flagged_, det.scores_)["f1"]
    assert f1 is not None and f1 >= F1_FLOOR.get(name, CHANCE_BEATING_FLOOR), f"{name}: F1 {f1}"


@pytest.mark.parametrize("name", LABEL_NOISE_DETECTORS)
def test_bad_input_is_a_clear_error(name):
    X, y, _ = planted_blobs()
    det = make_detector(name)
    for bad_value in (np.nan, np.inf):
        X_bad = X.copy()
        X_bad[3, 2] = bad_value
        with pytest.raises(PoisonlabError, match="NaN or inf"):
            det.fit(X_bad, y)
    with pytest.raises(PoisonlabError, match="rows"):
        det.fit(X, y[:-1])
    with pytest.raises(PoisonlabError, match="one class"):
        det.fit(X, np.zeros(len(X), dtype=np.int64))
    with pytest.raises(PoisonlabError, match="2-D"):
        det.fit(X[:, 0], y)


def test_auto_needs_no_poison_rate():
    # the same detector, unchanged, follows the poison rate on its own
    removed = []
    for rate in (0.05, 0.2):
        X, y, is_poison = planted_blobs(rate=rate, per_class=200)
        det = make_detector("pca+kmeans").fit(X, y)
        removed.append(det.flagged_.sum() / is_poison.sum())
    assert all(0.8 <= r <= 1.2 for r in removed), removed


def test_cluster_detector_composes_any_reducer_and_clusterer():
    X, y, is_poison = planted_blobs()
    for clusterer in (Birch(n_clusters=8, threshold=0.5), MiniBatchKMeans(n_clusters=8, n_init=1, random_state=0)):
        det = ClusterDetector(reducer=PCA(8, random_state=0), clusterer=clusterer).fit(X, y)
        assert detection_metrics(is_poison, det.flagged_)["f1"] >= 0.8
        assert det.n_clusters_ >= 4 and det.cluster_labels_.shape == (len(X),)
    params = ClusterDetector(reducer=PCA(8), clusterer=Birch()).get_params()
    assert params["reducer__n_components"] == 8  # nested parameters, as in a scikit-learn pipeline
    assert clone(ClusterDetector(reducer=PCA(8), clusterer=Birch())).get_params()["reducer__n_components"] == 8


def test_cluster_disagreement_and_noise():
    assigned = np.array([0, 0, 0, 0, 1, 1])
    y = np.array([5, 5, 5, 7, 7, 7])
    assert np.allclose(cluster_disagreement(assigned, y), [0, 0, 0, 2 / 3, 0, 0])
    Z = np.array([[0.0], [0.1], [5.0], [5.1], [4.9], [0.05]])
    joined = join_noise_to_nearest(Z, np.array([0, 0, 1, 1, -1, -1]))
    assert joined.tolist() == [0, 0, 1, 1, 1, 0]
    with pytest.raises(PoisonlabError, match="noise"):
        join_noise_to_nearest(Z, -np.ones(6, dtype=int))


def test_knn_skips_self_even_with_duplicates():
    # rows 0 and 1 coincide; each must count the other, never itself, among its 2 neighbours
    X = np.array([[0.0], [0.0], [10.0], [0.1]])
    y = np.array([0, 0, 1, 1])
    scores = make_detector("knn", n_neighbors=2, n_components=None).fit(X, y).scores_
    assert np.allclose(scores, [0.5, 0.5, 0.5, 1.0])


def test_scores_rank_poisons_first_on_a_hard_case():
    # overlapping blobs: thresholds differ, but every label-noise detector must rank poisons high
    rng = np.random.default_rng(5)
    X, y, is_poison = planted_blobs(seed=5, dim=8)
    X = X + rng.normal(0, 1.5, X.shape).astype(np.float32)
    for name in LABEL_NOISE_DETECTORS:
        det = make_detector(name).fit(X, y)
        assert detection_metrics(is_poison, det.flagged_, det.scores_)["roc_auc"] > 0.85, name


@pytest.fixture(scope="module")
def poisoned_digits():
    ds = load_dataset("digits").subset(600, 200, seed=0)
    return flip_labels(ds, rate=0.1, seed=0)


def test_run_defense_reports_metrics_and_reuses_features(poisoned_digits):
    first = run_defense(poisoned_digits, "pca+kmeans", features="pca", seed=0)
    for key in ("precision", "recall", "f1", "roc_auc", "removed", "poisons_removed", "clean_removed",
                "seconds_features", "seconds_detect", "defense", "features"):
        assert key in first.metrics
    # features computed once serve another defense, with the same result as computing them again
    X, info = compute_features("pca", poisoned_digits.x_train, poisoned_digits.y_train, seed=0)
    second = run_defense(poisoned_digits, "knn", features=X, feature_info=info, seed=0)
    again = run_defense(poisoned_digits, "knn", features="pca", seed=0)
    assert np.array_equal(second.flagged, again.flagged) and second.metrics["features"] == "pca"
    assert second.metrics["seconds_features"] == info["seconds"]
    with pytest.raises(PoisonlabError, match="rows"):
        run_defense(poisoned_digits, "knn", features=X[:10])
    assert first.flagged.shape == (len(poisoned_digits.y_train),) and first.flagged.dtype == bool
    assert first.metrics["removed"] == int(first.flagged.sum()) == len(first.flagged_indices)
    assert np.array_equal(first.kept, ~first.flagged)
    assert first.metrics["f1"] > 0.5
    again = run_defense(poisoned_digits, "pca+kmeans", features="pca", seed=0)
    assert np.array_equal(again.flagged, first.flagged)


def test_run_defense_on_activations_of_a_given_model(poisoned_digits):
    from poisonlab.training import TrainConfig, train

    model = train(poisoned_digits.x_train, poisoned_digits.y_train, num_classes=10,
                  config=TrainConfig(epochs=1, seed=0), progress=False).model
    result = run_defense(poisoned_digits, "kmeans", features="activations", model=model)
    assert result.metrics["feature_info"]["trained_here"] is False
    assert result.metrics["feature_info"]["dim"] == 128
    assert result.metrics["params"]["random_state"] == 0


def test_run_defense_that_empties_a_class_warns_or_errors(poisoned_digits):
    # one lone sample of class 9: all its neighbours carry other labels, so k-NN flags the whole class
    y = poisoned_digits.y_train
    lone_nine = np.flatnonzero(y == 9)[0]
    small = poisoned_digits.keep((y != 9) | (np.arange(len(y)) == lone_nine))
    with pytest.warns(UserWarning, match=r"every training sample of class\(es\) \[9\]"):
        result = run_defense(small, "knn", features="pixels")
    assert result.flagged[small.y_train == 9].all()
    with pytest.raises(PoisonlabError, match="every training sample of class"):
        run_defense(small, "knn", features="pixels", on_empty_class="error")


def test_run_defense_unknown_names(poisoned_digits):
    with pytest.raises(PoisonlabError, match="unknown defense"):
        run_defense(poisoned_digits, "nope", features="pixels")
    with pytest.raises(PoisonlabError, match="unknown features"):
        run_defense(poisoned_digits, "knn", features="nope")


def test_no_poison_means_no_recall_and_no_f1():
    """With nothing to find, recall and F1 are undefined (None, shown as n/a), not a failing 0."""
    flagged = np.array([True, False, False])
    metrics = detection_metrics(np.zeros(3, dtype=bool), flagged)
    assert metrics["recall"] is None and metrics["f1"] is None and metrics["precision"] == 0.0
    assert detection_metrics(np.array([True, False, False]), flagged)["f1"] == 1.0
