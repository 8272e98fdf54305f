"""The cheaper computations behind the detectors give the answers of the expensive ones they replace."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial import cKDTree
from sklearn.cluster import DBSCAN, KMeans
from sklearn.metrics import silhouette_samples
from sklearn.neighbors import NearestNeighbors

from poisonlab.defenses import ActivationClustering, SpectralSignatures
from poisonlab.defenses.activation_clustering import sampled_silhouette
from poisonlab.defenses.neighbours import dbscan_labels, nearest_neighbours, query_in_tree_order


def split_class(seed: int, n: int, share: float, shift: float, dim: int = 10) -> np.ndarray:
    """One class (n, dim): an anisotropic blob, with a ``share`` of it moved ``shift`` along a random direction."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, dim)) * rng.uniform(0.5, 2.0, dim)
    direction = rng.normal(size=dim)
    Z[: int(share * n)] += shift * direction / np.linalg.norm(direction) * 4
    return Z


def test_sampled_silhouette_is_exact_when_the_class_fits_the_sample():
    Z = split_class(0, 300, 0.1, 2.0)
    clusters = KMeans(n_clusters=2, n_init=3, random_state=0).fit_predict(Z)
    np.testing.assert_array_equal(sampled_silhouette(Z, clusters, sample_size=300),
                                  silhouette_samples(Z, clusters))
    np.testing.assert_array_equal(sampled_silhouette(Z, clusters, sample_size=None),
                                  silhouette_samples(Z, clusters))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("share", "shift"), [(0.0, 0.0), (0.05, 1.0), (0.1, 1.5), (0.2, 2.0), (0.3, 0.5)])
def test_sampled_silhouette_estimates_the_exact_one(seed, share, shift):
    Z = split_class(seed, 1500, share, shift)
    clusters = KMeans(n_clusters=2, n_init=3, random_state=0).fit_predict(Z)
    exact = silhouette_samples(Z, clusters)
    estimate = sampled_silhouette(Z, clusters, sample_size=600, random_state=seed)
    assert abs(estimate.mean() - exact.mean()) < 0.025  # one shared sample: its error is common to all rows
    assert np.abs(estimate - exact).max() < 0.1
    assert np.corrcoef(estimate, exact)[0, 1] > 0.95
    np.testing.assert_array_equal(estimate, sampled_silhouette(Z, clusters, sample_size=600, random_state=seed))


def test_activation_clustering_decides_as_with_the_exact_silhouette():
    # classes from clearly clean to clearly split; the decisions (and so the flags) must agree
    rng = np.random.default_rng(0)
    settings = [(0.0, 0.0), (0.1, 0.6), (0.1, 1.0), (0.15, 1.5), (0.25, 2.0), (0.05, 3.0), (0.3, 0.3), (0.2, 1.2)]
    X = np.vstack([split_class(10 + c, 1200, share, shift, dim=24) + 30 * rng.normal(size=24)
                   for c, (share, shift) in enumerate(settings)]).astype(np.float32)
    y = np.repeat(np.arange(len(settings)), 1200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exact = ActivationClustering(silhouette_sample_size=None).fit(X, y)
        sampled = ActivationClustering(silhouette_sample_size=300).fit(X, y)
    decisions = {c: r["suspicious"] for c, r in exact.class_report_.items()}
    assert any(decisions.values()) and not all(decisions.values())
    assert {c: r["suspicious"] for c, r in sampled.class_report_.items()} == decisions
    for c, r in exact.class_report_.items():
        assert abs(sampled.class_report_[c]["silhouette"] - r["silhouette"]) < 0.02
    np.testing.assert_array_equal(sampled.flagged_, exact.flagged_)


@pytest.mark.parametrize("dim", [2, 10, 40])
def test_nearest_neighbours_are_scikit_learns(dim):
    rng = np.random.default_rng(dim)
    Z = rng.normal(size=(700, dim))
    Z[100:110] = Z[0]  # duplicates: 11 rows at distance 0 from each other
    for k in (1, 5, 20):
        ours = nearest_neighbours(Z, k)
        theirs = NearestNeighbors(n_neighbors=k).fit(Z).kneighbors(return_distance=False)
        assert ours.shape == (700, k)
        assert not (ours == np.arange(700)[:, None]).any()
        # exact: the same distances, so the same neighbours up to exact distance ties (the duplicates)
        mine = np.sort(np.linalg.norm(Z[ours] - Z[:, None], axis=2), axis=1)
        reference = np.sort(np.linalg.norm(Z[theirs] - Z[:, None], axis=2), axis=1)
        np.testing.assert_allclose(mine, reference, rtol=1e-12, atol=1e-12)
        canonical = np.arange(700)
        canonical[100:110] = 0  # which copy of a duplicate is chosen is arbitrary
        for i in range(700):
            assert sorted(canonical[ours[i]]) == sorted(canonical[theirs[i]]) or canonical[i] == 0
        np.testing.assert_array_equal(ours, nearest_neighbours(Z, k))


def test_spectral_top_direction_is_the_svds():
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(600, 20)) * np.linspace(3, 0.5, 20)).astype(np.float32)
    y = np.repeat(np.arange(3), 200)
    detector = SpectralSignatures().fit(X, y)
    for c in range(3):
        rows = X[y == c].astype(np.float64)
        centred = rows - rows.mean(axis=0)
        proj = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
        np.testing.assert_allclose(detector.projection_scores_[y == c], proj ** 2, rtol=1e-6, atol=1e-9)


def test_queries_in_tree_order_answer_as_in_the_original_order():
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(900, 6))
    tree = cKDTree(Z, leafsize=8)
    for k in (1, 4):
        plain_distances, plain = tree.query(Z, k=k)
        distances, indices = query_in_tree_order(tree, k)
        np.testing.assert_array_equal(indices, np.asarray(plain).reshape(900, k))
        np.testing.assert_array_equal(distances, np.asarray(plain_distances).reshape(900, k))


@pytest.mark.parametrize("seed", range(6))
def test_dbscan_labels_are_scikit_learns(seed):
    rng = np.random.default_rng(seed)
    # blobs of different density, a sparse background and exact duplicates: core, border and noise points
    Z = np.vstack([rng.normal(size=(300, 3)) * 0.3, rng.normal(size=(200, 3)) * 0.6 + 3,
                   rng.uniform(-4, 6, size=(100, 3))])
    Z[50:55] = Z[600 - 1]
    for eps in (0.2, 0.35, 0.8):
        for min_samples in (1, 3, 8):
            theirs = DBSCAN(eps=eps, min_samples=min_samples).fit_predict(Z)
            ours = dbscan_labels(Z, eps, min_samples)
            assert (theirs == -1).any() or min_samples == 1 or eps == 0.8
            np.testing.assert_array_equal(ours, theirs)
