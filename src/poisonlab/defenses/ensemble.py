"""The recommended detector: a label vote for flipped labels, joined by spectral groups for clean-label poisons.

Two kinds of evidence, each strong where the other is blind (numbers: docs/measurements.md):

- *flipped*: a flipped label is outvoted by its neighbours' labels in feature space, and its own label
  comes up among those neighbours no more often than the flips out of the neighbourhood's class do.
  The vote is :class:`~poisonlab.defenses.deep_knn.DeepKNN`'s ``"share"`` rule (labels weighed by
  their size, so a heavy targeted flip does not win its new class's vote) on a PCA with 50 neighbours.
  The PCA keeps ``K - 1`` dimensions for ``K`` labels (at least 8, at most 32): the means of ``K``
  classes span ``K - 1`` directions, and a search space with fewer merges the two closest classes
  (CIFAR-10's cats and dogs) before it merges anything else. A sample's *dominant* label is the label
  with the highest share of its neighbours, and ``outvoted`` is the share disagreement
  ``1 - share(own) / share(dominant)`` in [0, 1]. A sample whose dominant label ``c`` is not its own
  label ``y`` is *flip-consistent* when its ``v`` votes for ``y`` are not improbably many for a flip
  from ``c``: the mid-p upper tail of Binomial(k, R[c, y]),
  ``P(V > v) + P(V = v) / 2``, is above ``flip_alpha``. ``R[c, y]``, the rate of label ``y`` among the
  neighbours of a flip out of ``c``, is read off the data, without the poison rate: among the
  *reference* samples (dominant label = own label) of label ``c``, the share of neighbour votes for
  ``y``. Classes that overlap in feature space meet each other's clean samples about as often in both
  directions, while a flip from ``c`` to ``y`` adds contacts from ``c`` to ``y`` only; so ``R`` keeps
  the one-way excess of the contacts and, of the two-way part, no more than its median over all pairs
  of labels (the level that a flip spread over every pair, e.g. a uniform flip, gives). A flip then
  has to stand out only as far as the flips of its own pair allow: a 30% targeted flip keeps up to
  about a third of its votes, a uniform flip almost none, and a clean sample on the border of two
  overlapping classes (a shirt among T-shirts) keeps more than a flip would. A *directed* pair, whose
  one-way excess is more than ``DIRECTED_EXCESS`` times the two-way level (and 1/k), is a heavy
  targeted flip, which the network partly learns: it pulls the flipped samples toward their new class,
  so they meet more of their new label than the references do, and in clumps. For such pairs the tail
  is a beta-binomial's with the same mean ``R[c, y]`` and the intra-neighbourhood correlation read off
  the variance of the references' counts of ``y`` (their overdispersion over the binomial's). Spread
  flips and two-way borders keep the binomial, which holds the borders out.
- *grouped*: poisons that keep a plausible label (FGSM's clean-label examples, backdoors) sit in a
  group of their own along the top singular direction of their class (Tran et al.'s spectral
  signature). Per class, the 1-d projection is split in two by exact 1-d 2-means; the smaller side is
  a *group* when it holds at most ``group_size`` of the class and the split is sharp (gap between the
  two means over the pooled standard deviation at least ``group_separation``; a unimodal Gaussian
  gives about 2.7). A network trained on flipped labels also sets the flipped samples apart along
  that direction, but then the label vote already outvotes most of the group; a group is used only
  when at most ``group_vote_share`` of it is outvoted (``outvoted`` above one half), i.e. when its
  labels look right.

Score: ``max(outvoted + flip, grouped)``, with ``flip`` 1 for flip-consistent samples, else 0, and
``grouped`` the projection measured from the class median in units of the group's line (above 1 for
its members) for classes with an accepted group, else 0. The line is the farther of the 2-means cut
and ``group_min_z`` robust standard deviations from the median: clean-label poisons that only partly
leave their class (FGSM) pull the 2-means cut into the clean bulk, and Tran et al.'s outlier reading
of the same projection keeps the clean side out. ``contamination="auto"`` flags ``score > 1``: the
flip-consistent samples and the members of accepted groups, ranked by their evidence. Neither needs
the poison rate.

Limitations: a flip made in both directions of one pair of labels (a swap) is two-way and is read as
natural overlap: on four Gaussian blobs with 30% of class 0 relabelled 1 and 30% of 1 relabelled 0
the rule found none of it (F1 0.000; the former share-vote rule 0.779), while the same flip one way
gave 1.000. Estimating the spread part of the two-way contacts from the share of references that
meet none (a flip reaches every reference, a border only some) fixed the swap (0.997) but cost
Fashion-MNIST 0.016 (docs/measurements.md). A class whose own clean data has a well separated minority mode along
its top direction (under ``group_size`` of the class, labels consistent) looks like a clean-label group
and loses that mode. On the paper CNN's MNIST and Fashion-MNIST activations no clean class split so (the
smaller side held 38-48% there); on a synthetic mixture of three equal components per class the
minority side held a third, above the default ``group_size`` of a quarter. ``class_report_`` says which
groups were taken.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import betabinom, binom
from threadpoolctl import threadpool_limits

from poisonlab.defenses.base import Detector, check_integer, check_n_jobs, check_random_state, check_real
from poisonlab.defenses.deep_knn import label_shares, share_disagreement
from poisonlab.defenses.neighbours import TREE_MAX_DIM, neighbour_votes, search_space
from poisonlab.defenses.pca import MAD_TO_SIGMA
from poisonlab.errors import PoisonlabError

# bounds of n_components="auto": 8 dimensions were the best vote on MNIST's 10 classes before the rule
# took K - 1; 32 is the largest dimension searched with the k-d tree (neighbours.TREE_MAX_DIM)
AUTO_MIN_COMPONENTS = 8
AUTO_MAX_COMPONENTS = TREE_MAX_DIM
# a pair is directed when its one-way excess of contacts is this many times the two-way level (or 1 / k)
DIRECTED_EXCESS = 5.0


class EnsembleDetector(Detector):
    """Outvoted labels or clean-label spectral groups (see the module docstring); the default of
    ``poisonlab detect``.

    Parameters
    ----------
    contamination : float or "auto"
        ``"auto"`` flags ``score > 1``; a float flags that share of the highest scores.
    n_neighbors : int
        Neighbours of the label vote (capped at ``N - 1``).
    flip_alpha : float in [0, 1)
        A sample outvoted by another label is taken as flipped while the mid-p tail of its own votes
        under its pair's flip rate is above this (smaller: more of the outvoted samples are kept as
        flips).
    n_components : int, None or "auto"
        PCA dimensions of the label vote (``None``: the features as they are; ``"auto"``: one fewer than
        the number of labels, clipped to [``AUTO_MIN_COMPONENTS``, ``AUTO_MAX_COMPONENTS``]).
    group_size : float in (0, 0.5]
        Largest share of a class that a group may hold (a larger minority is taken as the class's own
        structure).
    group_separation : float
        Smallest gap between the two 1-d 2-means centres, in pooled standard deviations.
    group_vote_share : float in [0, 1]
        Largest share of a group's members that the label vote may outvote for the group to count.
    group_min_z : float
        A group member must also lie this many robust standard deviations (1.4826 MAD of the class's
        projection) from the class median; 0 keeps the whole 2-means side.
    min_class_size : int
        Classes with fewer rows are not searched for groups.
    n_jobs : int or None
        Threads of the neighbour search (``None``: every core).
    random_state : int
        Seeds the PCA.

    Attributes
    ----------
    n_components_ : int or None
        The PCA dimensions the vote used (``None``: the features as they are).
    outvoted_ : np.ndarray (N,) float
        Share disagreement of the label vote.
    flip_consistent_ : np.ndarray (N,) bool
        Outvoted samples whose own votes are few enough for a flip (see the module docstring).
    flip_rates_ : np.ndarray (K, K) float
        ``R[c, y]``, the estimated rate of label ``y`` among the neighbours of a flip from ``c`` (rows
        and columns in the order of ``np.unique(y)``).
    grouped_ : np.ndarray (N,) float
        Group evidence (0 outside classes with an accepted group).
    class_report_ : dict
        Per class: ``n``, ``group_share``, ``separation``, ``group_vote_share`` (outvoted share of the
        smaller side) and ``accepted``.
    """

    def __init__(self, *, contamination="auto", n_neighbors: int = 50, flip_alpha: float = 0.002,
                 n_components: int | str | None = "auto",
                 group_size: float = 0.25, group_separation: float = 3.2, group_vote_share: float = 0.4,
                 group_min_z: float = 2.5, min_class_size: int = 20, n_jobs: int | None = None, random_state: int = 0):
        self.contamination = contamination
        self.n_neighbors = n_neighbors
        self.flip_alpha = flip_alpha
        self.n_components = n_components
        self.group_size = group_size
        self.group_separation = group_separation
        self.group_vote_share = group_vote_share
        self.group_min_z = group_min_z
        self.min_class_size = min_class_size
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        check_integer("n_neighbors", self.n_neighbors)
        check_real("flip_alpha", self.flip_alpha, low=0.0, high=1.0, high_open=True)
        if self.n_components != "auto":
            try:
                check_integer("n_components", self.n_components, allow_none=True)
            except PoisonlabError:
                raise PoisonlabError(f"n_components must be a positive integer, None or 'auto', "
                                     f"got {self.n_components!r}") from None
        check_real("group_size", self.group_size, low=0.0, high=0.5, low_open=True)
        check_real("group_separation", self.group_separation, low=0.0)
        check_real("group_vote_share", self.group_vote_share, low=0.0, high=1.0)
        check_real("group_min_z", self.group_min_z, low=0.0)
        check_integer("min_class_size", self.min_class_size, minimum=0)
        check_n_jobs("n_jobs", self.n_jobs)
        check_random_state("random_state", self.random_state)

    def _score(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        labels, y_index = np.unique(y, return_inverse=True)
        self.n_components_ = vote_components(self.n_components, len(labels))
        Z = search_space(X, self.n_components_, random_state=self.random_state)
        # one thread: small BLAS calls stall on a busy machine (see docs/measurements.md)
        with threadpool_limits(limits=1):
            votes = neighbour_votes(Z, y_index, min(int(self.n_neighbors), len(X) - 1), n_jobs=self.n_jobs)
            outvoted = share_disagreement(votes, y_index)
            flip, rates = flip_consistent(votes, y_index, float(self.flip_alpha))
            grouped, report = self._groups(X.astype(np.float64), y_index, outvoted > 0.5)
        self.outvoted_, self.grouped_, self.class_report_ = outvoted, grouped, report
        self.flip_consistent_, self.flip_rates_ = flip, rates
        return np.maximum(outvoted + flip, grouped)

    def _groups(self, X: np.ndarray, y_index: np.ndarray, outvoted: np.ndarray) -> tuple[np.ndarray, dict]:
        grouped = np.zeros(len(X))
        report = {}
        for c in range(int(y_index.max()) + 1):
            idx = np.flatnonzero(y_index == c)
            if len(idx) < max(int(self.min_class_size), 4):
                continue
            centred = X[idx] - X[idx].mean(axis=0)
            _, vectors = np.linalg.eigh(centred.T @ centred)
            proj = centred @ vectors[:, -1]
            left, separation, cut = split_in_two(proj)
            # orient so that the smaller side lies at positive projections from the median
            sign = 1.0 if left > len(idx) / 2 else -1.0
            side = proj > cut if sign > 0 else proj <= cut
            share = float(side.mean())
            vote_share = float(outvoted[idx[side]].mean()) if side.any() else 1.0
            accepted = (share <= self.group_size and separation >= self.group_separation
                        and vote_share <= self.group_vote_share)
            report[c] = {"n": int(len(idx)), "group_share": share, "separation": float(separation),
                         "group_vote_share": vote_share, "accepted": bool(accepted)}
            if accepted:
                median = float(np.median(proj))
                offset = sign * (proj - median)
                spread = MAD_TO_SIGMA * float(np.median(np.abs(proj - median)))
                # a member lies beyond the cut and at least group_min_z robust deviations out: where the
                # group overlaps the class, the 2-means cut falls inside the clean bulk
                reach = max(sign * (cut - median), float(self.group_min_z) * spread, 1e-12)
                grouped[idx] = np.maximum(offset / reach, 0.0)
                members = side & (offset >= float(self.group_min_z) * spread)
                # a member exactly on the line stays a member
                grouped[idx[members]] = np.maximum(grouped[idx[members]], np.nextafter(1.0, 2.0))
        return grouped, report

    def _auto_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        return 1.0


def vote_components(n_components: int | str | None, n_labels: int) -> int | None:
    """The PCA dimensions of the label vote: ``n_components`` as given, or for ``"auto"`` ``n_labels - 1``
    clipped to [``AUTO_MIN_COMPONENTS``, ``AUTO_MAX_COMPONENTS``] (the span of the class means; the upper
    bound keeps the search in the k-d tree's range)."""
    if n_components != "auto":
        return n_components
    return int(min(max(n_labels - 1, AUTO_MIN_COMPONENTS), AUTO_MAX_COMPONENTS))


def flip_consistent(votes: np.ndarray, y_index: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``(flip, R)``: which samples (N,) bool have votes consistent with a flipped label, and the
    estimated flip rates R (K, K) (see the module docstring).

    ``votes`` (N, K): each sample's neighbour counts per label index (itself excluded, k per row);
    ``y_index`` (N,): its label index. Why the one-way excess: the k-NN relation is nearly symmetric,
    so two overlapping classes exchange about as many neighbour contacts each way, and a flip adds
    them one way only.
    """
    votes = np.asarray(votes)
    n, n_labels = votes.shape
    k = int(votes[0].sum()) if n else 0
    share = label_shares(votes, y_index)
    rows = np.arange(n)
    dominant = share.argmax(axis=1)
    # a tie with the own label keeps the sample a reference, never a flip
    reference = share[rows, y_index] >= share[rows, dominant]
    counted = votes[reference].astype(np.float64)
    contacts, squares = np.zeros((n_labels, n_labels)), np.zeros((n_labels, n_labels))
    np.add.at(contacts, y_index[reference], counted)
    np.add.at(squares, y_index[reference], counted * counted)
    n_reference = np.maximum(np.bincount(y_index[reference], minlength=n_labels), 1)[:, None]
    per_row = k * n_reference
    two_way = np.minimum(contacts, contacts.T) / per_row
    one_way = np.maximum(contacts - contacts.T, 0.0) / per_row
    off = ~np.eye(n_labels, dtype=bool)
    level = float(np.median(two_way[off])) if n_labels > 1 else 0.0
    rates = np.minimum(one_way + np.minimum(two_way, level), 1.0)
    np.fill_diagonal(rates, 0.0)
    own = votes[rows, y_index]
    rate = np.clip(rates[dominant, y_index], 1e-12, 1 - 1e-12)
    tail = binom.sf(own, k, rate) + 0.5 * binom.pmf(own, k, rate)
    # directed pairs: the references' counts of the pair's label, overdispersed as clustered flips make
    # them, give the intra-neighbourhood correlation of a beta-binomial with the same mean rate
    directed = (one_way > DIRECTED_EXCESS * max(level, 1.0 / max(k, 1))) & off
    pick = directed[dominant, y_index] & ~reference
    if pick.any() and k > 1:
        mean = contacts / n_reference
        variance = np.maximum(squares / n_reference - mean * mean, 0.0)
        p = np.clip(mean / k, 1e-12, 1 - 1e-12)
        dispersion = np.maximum(variance / (k * p * (1 - p)), 1.0)
        correlation = np.clip((dispersion - 1) / (k - 1), 1e-12, 1 - 1e-6)[dominant[pick], y_index[pick]]
        size = 1 / correlation - 1
        a, b = rate[pick] * size, (1 - rate[pick]) * size
        tail[pick] = betabinom.sf(own[pick], k, a, b) + 0.5 * betabinom.pmf(own[pick], k, a, b)
    return ~reference & (tail > alpha), rates


def split_in_two(values: np.ndarray) -> tuple[int, float, float]:
    """Exact 2-means of 1-d ``values`` (n,): ``(n_left, separation, cut)``.

    ``n_left`` values at most ``cut`` form the lower cluster; ``separation`` is the gap between the two
    means over the pooled within-cluster standard deviation. O(n log n): a sort and a scan of the
    n - 1 split points.
    """
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = len(ordered)
    sums, squares = np.cumsum(ordered), np.cumsum(ordered * ordered)
    left = np.arange(1, n)
    left_mean = sums[:-1] / left
    right_mean = (sums[-1] - sums[:-1]) / (n - left)
    sse = (squares[:-1] - left * left_mean ** 2) + (squares[-1] - squares[:-1] - (n - left) * right_mean ** 2)
    best = int(np.argmin(sse))
    spread = np.sqrt(max(float(sse[best]), 0.0) / n)
    gap = float(right_mean[best] - left_mean[best])
    return best + 1, (gap / spread if spread > 0 else float("inf") if gap > 0 else 0.0), float(ordered[best])


__all__ = ["AUTO_MAX_COMPONENTS", "AUTO_MIN_COMPONENTS", "EnsembleDetector", "flip_consistent", "split_in_two",
           "vote_components"]
