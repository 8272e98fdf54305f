"""Deep k-NN (Peri et al. 2020, "Deep k-NN Defense against Clean-label Data Poisoning Attacks").

A poison (or a flipped label) sits among neighbours in feature space whose labels are not its own.
"""

from __future__ import annotations

import numpy as np

from poisonlab.defenses.base import Detector, check_choice, check_integer, check_n_jobs, check_random_state
from poisonlab.defenses.neighbours import neighbour_votes, search_space

VOTES = ("plurality", "majority", "share")


class DeepKNN(Detector):
    """Flag a sample whose ``k`` nearest neighbours (itself excluded) vote for another label.

    Neighbours are exact, by Euclidean distance, after a PCA to ``n_components`` dimensions (default 10:
    a k-d tree search in 10 dimensions is an order of magnitude faster than brute force in 128, and
    the vote on the penultimate activations of the paper CNN came out the same, see
    docs/measurements.md; ``None`` searches the features as they are). ``disagreement_`` holds, per sample, the
    fraction of its neighbours whose label differs from its own; ``neighbour_labels_`` the plurality
    label of its neighbours.

    ``vote="plurality"`` (Peri et al.'s rule, the default): ``scores_`` is the margin
    ``(count of the most frequent other label - count of own label) / k`` in [-1, 1];
    ``contamination="auto"`` flags ``scores_ > 0``, i.e. exactly the samples whose own label is
    outnumbered by some other label (a tie keeps the sample).
    ``vote="share"``: each label's votes are divided by that label's size in the whole set, and
    ``scores_`` is ``1 - share(own) / max share`` in [0, 1]; ``"auto"`` flags ``scores_ > 0.5``. Robust
    to a heavy targeted flip (48% of the 2s relabelled 8: a flipped 2 sits among neighbours about half
    labelled 2, half 8, but label 8 is three times the size of label 2, so 2 wins the shares).

    ``vote="majority"``: ``scores_`` is ``disagreement_`` in [0, 1]; ``"auto"`` flags
    ``scores_ > 0.5`` (more than half the neighbours disagree). It flags a superset of the plurality
    rule: an outnumbered own label always holds under half the votes, but under half the votes
    need not be outnumbered by one other label.
    Neither needs the poison rate. A float ``contamination`` flags that share of the highest scores.

    Peri et al. find ``k`` works best at about the number of poisons per class or above; the default
    50 suits a few percent of poisons in classes of thousands.

    Parameters
    ----------
    contamination : float or "auto"
    n_neighbors : int
        ``k``; capped at ``N - 1``.
    vote : {"plurality", "majority", "share"}
    n_components : int or None
        PCA dimensions before the neighbour search (None: use the features as they are).
    n_jobs : int or None
        Threads of the neighbour search (``None``: every core; see
        :func:`poisonlab.defenses.neighbours.nearest_neighbours`).
    random_state : int
        Seed of the PCA solver.
    """

    def __init__(self, *, contamination="auto", n_neighbors: int = 50, vote: str = "plurality",
                 n_components: int | None = 10, n_jobs: int | None = None, random_state: int = 0):
        self.contamination = contamination
        self.n_neighbors = n_neighbors
        self.vote = vote
        self.n_components = n_components
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        check_choice("vote", self.vote, VOTES)
        check_integer("n_neighbors", self.n_neighbors)
        check_integer("n_components", self.n_components, allow_none=True)
        check_n_jobs("n_jobs", self.n_jobs)
        check_random_state("random_state", self.random_state)

    def _score(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        k = min(int(self.n_neighbors), len(X) - 1)
        X = search_space(X, self.n_components, random_state=self.random_state)
        classes, y_index = np.unique(y, return_inverse=True)
        votes = neighbour_votes(X, y_index, k, n_jobs=self.n_jobs)
        rows = np.arange(len(X))
        own = votes[rows, y_index]
        self.disagreement_ = 1.0 - own / k
        self.neighbour_labels_ = classes[votes.argmax(axis=1)]
        if self.vote == "majority":
            return self.disagreement_
        if self.vote == "share":
            return share_disagreement(votes, y_index)
        others = votes.copy()
        others[rows, y_index] = -1
        return (others.max(axis=1) - own) / k

    def _auto_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        return 0.0 if self.vote == "plurality" else 0.5


def label_shares(votes: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """(N, K) each label's votes (N, K) over that label's size in the whole set (``vote="share"``)."""
    sizes = np.bincount(y_index, minlength=votes.shape[1]).astype(np.float64)
    return votes / np.maximum(sizes, 1.0)[None, :]


def share_disagreement(votes: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """``1 - share(own label) / max share`` per sample, where a label's share is its votes over its size
    in the whole set (see ``vote="share"``)."""
    share = label_shares(votes, y_index)
    top = share.max(axis=1)
    own = share[np.arange(len(votes)), y_index]
    return np.where(top > 0, 1.0 - own / np.where(top > 0, top, 1.0), 0.0)
