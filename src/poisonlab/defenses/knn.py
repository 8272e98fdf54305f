"""k-nearest-neighbour label sanitisation: flag a sample whose neighbours mostly carry another label.

After Steinhardt-style data sanitisation and Peri et al., "Deep k-NN Defense against Clean-label Data
Poisoning Attacks" (2020), here in any feature space and with an optional PCA first for speed.
"""

from __future__ import annotations

import numpy as np

from poisonlab.defenses import register
from poisonlab.defenses.base import Detector
from poisonlab.defenses.cluster import AUTO_SCORE_THRESHOLD, _pca, reduce_features
from poisonlab.errors import PoisonlabError


@register("knn")
class KNNDetector(Detector):
    """Score = the share of a sample's ``n_neighbors`` nearest neighbours whose label differs from its own.

    Parameters
    ----------
    n_neighbors : int
        Neighbours consulted (the sample itself excluded).
    n_components : int or None
        PCA components before the neighbour search (``None``: the features as they are). A tree search in
        16 dimensions is much faster than brute force in 128 or 784.
    contamination : float in [0, 0.5] or "auto"
        ``"auto"`` flags ``score > 0.5``: most neighbours carry another label, whatever the poison rate.
    random_state : int
        Seeds the PCA.

    Attributes
    ----------
    scores_, threshold_, flagged_ : see :class:`~poisonlab.defenses.base.Detector`
    """

    def __init__(self, *, n_neighbors: int = 10, n_components: int | None = 16, contamination: float | str = "auto",
                 random_state: int = 0) -> None:
        self.n_neighbors = n_neighbors
        self.n_components = n_components
        self.contamination = contamination
        self.random_state = random_state

    def _score(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        from sklearn.neighbors import NearestNeighbors  # noqa: PLC0415

        if int(self.n_neighbors) < 1:
            raise PoisonlabError(f"n_neighbors must be >= 1, got {self.n_neighbors}")
        k = min(int(self.n_neighbors), len(X) - 1)
        Z = reduce_features(_pca(self.n_components, self.random_state), X)
        _, idx = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z)
        return 1.0 - same_label_share(idx, y)

    def _auto_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        return AUTO_SCORE_THRESHOLD


def same_label_share(neighbours: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Share (N,) of each row's neighbours (N, k + 1), the row itself excluded, that carry its label."""
    rows = np.arange(len(neighbours))
    is_self = neighbours == rows[:, None]
    # exact duplicates can push a sample out of its own first slot: drop it wherever it is, else the last
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), neighbours.shape[1] - 1)
    keep = np.ones(neighbours.shape, dtype=bool)
    keep[rows, drop] = False
    others = neighbours[keep].reshape(len(neighbours), -1)
    return (y[others] == y[:, None]).mean(axis=1)
