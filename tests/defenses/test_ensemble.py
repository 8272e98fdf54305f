"""The recommended detector: flipped labels by the vote, clean-label groups by the spectral split, clean data kept."""

from __future__ import annotations

import numpy as np
import pytest

from poisonlab.defenses import RECOMMENDED_DETECTOR, detection_metrics, make_detector
from poisonlab.defenses.ensemble import flip_consistent, split_in_two
from poisonlab.errors import PoisonlabError


def blobs(seed: int, n_per_class: int = 300, n_classes: int = 4, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(n_classes, dim))
    y = np.repeat(np.arange(n_classes), n_per_class)
    return (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32), y.astype(np.int64)


def test_it_is_the_recommended_detector():
    assert RECOMMENDED_DETECTOR == "ensemble"


def test_flipped_labels_are_outvoted_and_no_group_is_claimed():
    X, y = blobs(0)
    rng = np.random.default_rng(1)
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rng.choice(len(y), 120, replace=False)] = True
    y_noisy = y.copy()
    y_noisy[flipped] = (y[flipped] + rng.integers(1, 4, flipped.sum())) % 4
    detector = make_detector("ensemble").fit(X, y_noisy)
    assert detection_metrics(flipped, detector.flagged_)["f1"] > 0.9
    assert not any(r["accepted"] for r in detector.class_report_.values())


def test_a_clean_label_group_is_found_without_the_poison_rate():
    X, y = blobs(2)
    rng = np.random.default_rng(3)
    direction = rng.normal(size=X.shape[1])
    direction /= np.linalg.norm(direction)
    donors = rng.choice(np.flatnonzero(y == 1), 40, replace=False)
    X = np.vstack([X, X[donors] + 6.0 * direction]).astype(np.float32)
    y = np.r_[y, np.ones(40, dtype=np.int64)]  # the label is right: the vote cannot see them
    is_poison = np.r_[np.zeros(len(y) - 40, dtype=bool), np.ones(40, dtype=bool)]
    detector = make_detector("ensemble").fit(X, y)
    assert detector.class_report_[1]["accepted"]
    assert detection_metrics(is_poison, detector.flagged_)["f1"] > 0.9
    assert detector.outvoted_[is_poison].max() <= 0.5  # found by the group, not the vote


def test_clean_data_loses_almost_nothing():
    for seed in range(3):
        X, y = blobs(10 + seed)
        detector = make_detector("ensemble").fit(X, y)
        assert detector.flagged_.mean() < 0.02
        assert not any(r["accepted"] for r in detector.class_report_.values())


def test_a_class_made_of_three_equal_modes_is_not_a_poison_group():
    rng = np.random.default_rng(5)
    centres = rng.normal(scale=4.0, size=(12, 16))
    y = np.repeat(np.arange(4), 600)
    X = (centres[y * 3 + rng.integers(0, 3, len(y))] + rng.normal(size=(len(y), 16))).astype(np.float32)
    detector = make_detector("ensemble").fit(X, y)
    assert detector.flagged_.mean() < 0.02


def test_split_in_two_is_the_exact_one_dimensional_two_means():
    rng = np.random.default_rng(0)
    values = np.r_[rng.normal(0, 1, 300), rng.normal(10, 1, 60)]
    n_left, separation, cut = split_in_two(rng.permutation(values))
    assert n_left == 300 and separation > 8 and 3 < cut < 7
    brute = min(range(1, 360), key=lambda i: np.var(np.sort(values)[:i]) * i + np.var(np.sort(values)[i:]) * (360 - i))
    assert brute == n_left
    unimodal = split_in_two(rng.normal(size=5000))
    assert 0.45 < unimodal[0] / 5000 < 0.55 and 2.4 < unimodal[1] < 3.0


def test_a_group_that_overlaps_its_class_keeps_the_clean_side_out():
    # poisons that only partly leave their class: the 2-means side takes clean samples next to the cut,
    # and the robust-deviation line keeps them
    X, y = blobs(4, n_per_class=600)
    rng = np.random.default_rng(6)
    direction = rng.normal(size=X.shape[1])
    direction /= np.linalg.norm(direction)
    donors = rng.choice(np.flatnonzero(y == 2), 120, replace=False)
    poisons = X[donors] + (3.5 + rng.normal(scale=1.0, size=(120, 1))) * direction
    X = np.vstack([X, poisons]).astype(np.float32)
    y = np.r_[y, np.full(120, 2, dtype=np.int64)]
    is_poison = np.r_[np.zeros(len(y) - 120, dtype=bool), np.ones(120, dtype=bool)]
    whole_side = make_detector("ensemble", group_min_z=0.0).fit(X, y)
    detector = make_detector("ensemble").fit(X, y)
    assert detector.class_report_[2]["accepted"] and whole_side.class_report_[2]["accepted"]
    assert detector.flagged_.sum() < whole_side.flagged_.sum()
    assert not (detector.flagged_ & ~whole_side.flagged_).any()  # the line only removes members
    precision = lambda d: (d.flagged_ & is_poison).sum() / d.flagged_.sum()
    assert precision(detector) > precision(whole_side)  # the line trades recall for precision


def test_a_targeted_flip_is_found_by_its_pair_rate():
    # 30% of class 0 relabelled 1: a flip keeps about 30% of its votes, far more than a uniform flip,
    # and the rate read off the data says so
    X, y = blobs(7, n_per_class=600)
    rng = np.random.default_rng(8)
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rng.choice(np.flatnonzero(y == 0), 180, replace=False)] = True
    y_noisy = np.where(flipped, 1, y)
    detector = make_detector("ensemble").fit(X, y_noisy)
    rates = detector.flip_rates_
    assert 0.2 < rates[0, 1] < 0.4
    assert rates[1, 0] < 0.02 and np.delete(rates, 1, axis=1)[1:].max() < 0.02
    assert detection_metrics(flipped, detector.flagged_)["f1"] > 0.95
    assert (detector.flip_consistent_ == (detector.scores_ > 1)).all()


def test_clean_samples_where_two_classes_overlap_are_kept():
    # classes 0 and 1 overlap; a uniform 10% flip; the pair's two-way contacts are overlap, not flips,
    # so the border samples that the share vote outvotes stay in
    rng = np.random.default_rng(9)
    centres = rng.normal(scale=5.0, size=(4, 16))
    centres[1] = centres[0] + 1.2 * (centres[1] - centres[0]) / np.linalg.norm(centres[1] - centres[0])
    y = np.repeat(np.arange(4), 800)
    X = (centres[y] + rng.normal(size=(len(y), 16))).astype(np.float32)
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rng.choice(len(y), 320, replace=False)] = True
    y_noisy = np.where(flipped, (y + rng.integers(1, 4, len(y))) % 4, y)
    detector = make_detector("ensemble").fit(X, y_noisy)
    rates = detector.flip_rates_
    assert rates[0, 1] < 2 * np.median(rates[~np.eye(4, dtype=bool)])
    outvoted = detector.outvoted_ > 0.5
    assert (outvoted & ~flipped).sum() > 2 * (detector.flagged_ & ~flipped).sum()
    assert detection_metrics(flipped, detector.flagged_)["f1"] > detection_metrics(flipped, outvoted)["f1"]


def test_flip_rates_keep_the_one_way_excess_and_the_two_way_level():
    # hand-made votes (k = 10) of six samples with labels 0, 0, 1, 1, 2, 2
    y = np.array([0, 0, 1, 1, 2, 2])
    votes = np.array([[8, 2, 0],   # reference 0: two votes for 1
                      [0, 9, 1],   # a 0 among 1s: not a reference
                      [1, 9, 0],   # reference 1: one vote for 0
                      [0, 10, 0],
                      [0, 0, 10],
                      [1, 0, 9]])
    flip, rates = flip_consistent(votes, y, 0.01)
    # contacts: 0->1 2 (one reference of 0), 1->0 1, 2->0 1 (two references each of 1 and 2)
    # two-way: (0,1) min(2, 1) / 10, (1,0) min(1, 2) / 20, the other four 0: level (median) 0
    assert rates[0, 1] == pytest.approx((2 - 1) / 10)
    assert rates[2, 0] == pytest.approx(1 / 20) and rates[1, 0] == 0.0
    assert np.diag(rates).sum() == 0
    assert flip.tolist() == [False, True, False, False, False, False]  # no own vote, as a flip from 1 would have


def test_flip_alpha_is_checked():
    with pytest.raises(PoisonlabError, match="flip_alpha"):
        make_detector("ensemble", flip_alpha=1.0)
    with pytest.raises(PoisonlabError, match="flip_alpha"):
        make_detector("ensemble", flip_alpha=-0.1)


def two_close_classes(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Twelve classes in 24-d: ten far apart, and classes 0 and 1 one step apart along a direction of
    their own; 40% of class 0 relabelled 1 (too many for a clean-label group)."""
    rng = np.random.default_rng(seed)
    n, dim = 200, 24
    centres = np.zeros((12, dim))
    centres[np.arange(2, 12), np.arange(10)] = 12.0
    centres[1, 10] = 4.0
    y = np.repeat(np.arange(12), n)
    X = (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32)
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rng.choice(n, int(0.4 * n), replace=False)] = True
    y_noisy = y.copy()
    y_noisy[flipped] = 1
    return X, y_noisy, flipped


def test_the_vote_searches_the_span_of_the_class_means():
    # the pair's own direction is the eleventh: 8 dimensions merge the two classes, K - 1 = 11 keep them apart
    X, y, flipped = two_close_classes(2)
    detector = make_detector("ensemble").fit(X, y)
    assert detector.n_components_ == 11
    assert detection_metrics(flipped, detector.flagged_)["f1"] > 0.8
    narrow = make_detector("ensemble", n_components=8).fit(X, y)
    assert narrow.n_components_ == 8
    assert detection_metrics(flipped, narrow.flagged_)["f1"] < 0.2


def test_auto_components_are_one_fewer_than_the_labels_within_bounds():
    from poisonlab.defenses.ensemble import AUTO_MAX_COMPONENTS, AUTO_MIN_COMPONENTS, vote_components

    assert vote_components("auto", 10) == 9
    assert vote_components("auto", 2) == AUTO_MIN_COMPONENTS == 8
    assert vote_components("auto", 100) == AUTO_MAX_COMPONENTS == 32
    assert vote_components(5, 100) == 5 and vote_components(None, 10) is None
    for bad in (0, "all", 2.5, True):
        with pytest.raises(PoisonlabError, match="n_components must be a positive integer, None or 'auto'"):
            make_detector("ensemble", n_components=bad)


def pulled_flip(seed: int, n: int = 1500, dim: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four blobs; half of class 0 relabelled 1 and moved one unit toward class 1, as a network trained
    on the flip pulls the flipped samples toward their new class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(4, dim))
    y = np.repeat(np.arange(4), n)
    X = centres[y] + rng.normal(size=(len(y), dim))
    toward = (centres[1] - centres[0]) / np.linalg.norm(centres[1] - centres[0])
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rng.choice(n, n // 2, replace=False)] = True
    X[flipped] += toward
    y_noisy = np.where(flipped, 1, y)
    return X.astype(np.float32), y_noisy, flipped


def test_a_pulled_targeted_flip_is_tested_against_its_overdispersed_votes(monkeypatch):
    import poisonlab.defenses.ensemble as ensemble

    X, y, flipped = pulled_flip(0)
    found = detection_metrics(flipped, make_detector("ensemble").fit(X, y).flagged_)["f1"]
    monkeypatch.setattr(ensemble, "DIRECTED_EXCESS", np.inf)  # every pair binomial
    binomial = detection_metrics(flipped, make_detector("ensemble").fit(X, y).flagged_)["f1"]
    assert found > 0.9
    assert binomial < 0.8  # the pulled flips hold more own votes than the references' mean rate allows
