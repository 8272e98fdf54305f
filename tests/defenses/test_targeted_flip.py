"""A heavy targeted flip (the label-flip preset's shape): label shares, the paper's defenses, deep k-NN's share vote."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from poisonlab.defenses import detection_metrics, make_detector
from poisonlab.defenses.cluster import cluster_disagreement
from poisonlab.defenses.deep_knn import share_disagreement


def heavy_targeted_flip(*, per_class: int = 200, rate: float = 0.48, seed: int = 0):
    """Four well-separated blobs; ``rate`` of class 0 relabelled 1 (like 48% of the 2s relabelled 8)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (4, 8))
    y_true = np.repeat(np.arange(4), per_class)
    X = (centres[y_true] + rng.normal(0, 1, (len(y_true), 8))).astype(np.float32)
    y = y_true.copy()
    flipped = rng.choice(np.flatnonzero(y_true == 0), int(rate * per_class), replace=False)
    y[flipped] = 1
    is_poison = np.zeros(len(y), dtype=bool)
    is_poison[flipped] = True
    return X, y, is_poison


def test_label_shares_see_through_a_near_half_targeted_flip():
    # one cluster per true class: the cluster of 0s holds 104 labels 0 and 96 labels 1
    X, y, is_poison = heavy_targeted_flip()
    assigned = np.repeat(np.arange(4), 200)
    disagreement = cluster_disagreement(assigned, y)
    # counts would call the 96 a close minority (1 - 96/104 = 0.08); shares make them clear outliers
    assert (disagreement[is_poison] > 0.5).all()
    assert (disagreement[~is_poison] == 0).all()


@pytest.mark.parametrize("name", ["pca", "kmeans", "pca+kmeans", "birch", "dbscan"])
def test_paper_defenses_find_a_heavy_targeted_flip(name):
    X, y, is_poison = heavy_targeted_flip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = make_detector(name).fit(X, y)
    metrics = detection_metrics(is_poison, det.flagged_)
    assert metrics["f1"] > 0.8, metrics


def test_share_vote_of_deep_knn():
    X, y, is_poison = heavy_targeted_flip()
    share = make_detector("deep-knn", vote="share", n_neighbors=20).fit(X, y)
    plurality = make_detector("deep-knn", vote="plurality", n_neighbors=20).fit(X, y)
    f1_share = detection_metrics(is_poison, share.flagged_)["f1"]
    assert f1_share > 0.8 and f1_share > detection_metrics(is_poison, plurality.flagged_)["f1"] + 0.2
    votes = np.array([[3, 1], [2, 2], [0, 4], [1, 3]])
    # label 1 is three times as common as label 0: two votes of each favour label 0 (sample 1)
    np.testing.assert_allclose(share_disagreement(votes, np.array([0, 1, 1, 1])), [0.0, 2 / 3, 0.0, 0.0])
