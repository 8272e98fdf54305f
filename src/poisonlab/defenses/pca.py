"""The paper's PCA defense: project onto the principal subspace, flag samples far from their labelled class.

A PCA with ``n_components`` components is fitted on all the features being filtered (the poisons are a
small share, so the leading directions are the clean data's). In that subspace every label ``c`` gets a
robust centre, the coordinate-wise median of the samples labelled ``c`` (a 10% label flip does not move
a median much, unlike a mean or a per-class PCA, whose leading direction would point at the far-away
poisons). A sample's score is its distance from its labelled class's centre as a robust z-score within
that class (median and MAD of the class's distances), so classes of different spread share one
threshold, and a flipped sample, which sits with its true class, scores high.
"""

from __future__ import annotations

import numpy as np

from poisonlab.defenses import register
from poisonlab.defenses.base import Detector
from poisonlab.errors import PoisonlabError

MAD_TO_SIGMA = 1.4826


@register("pca")
class PCADetector(Detector):
    """Distance from the labelled class's median in the principal subspace, as a robust z-score per class.

    Parameters
    ----------
    n_components : int
        Principal components (capped by the number of samples and features).
    contamination : float in [0, 0.5] or "auto"
        ``"auto"`` flags ``score > z_threshold`` (a robust z-score within each class, so it needs no
        poison rate).
    z_threshold : float
        The robust z-score cut for ``"auto"``. Measured (seed 0): on FGSM poisons in pixel space (MNIST
        slice of 6,000) 3 gives F1 0.83 and 5 only 0.23; on the heavier-tailed activations of a 3-epoch
        model under a 10% label flip (60,000) 3 gives F1 0.85 and 6 gives 0.97. 3 is the default.
    random_state : int
        Seeds the randomized SVD.

    Attributes
    ----------
    scores_, threshold_, flagged_ : see :class:`~poisonlab.defenses.base.Detector`
    components_ : np.ndarray (n_components, D)
        The principal directions.
    """

    def __init__(self, *, n_components: int = 10, contamination: float | str = "auto", z_threshold: float = 3.0,
                 random_state: int = 0) -> None:
        self.n_components = n_components
        self.contamination = contamination
        self.z_threshold = z_threshold
        self.random_state = random_state

    def _score(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA  # noqa: PLC0415

        if int(self.n_components) < 1:
            raise PoisonlabError(f"n_components must be >= 1, got {self.n_components}")
        k = min(int(self.n_components), *X.shape)
        pca = PCA(n_components=k, svd_solver="randomized" if k < min(X.shape) // 2 else "full",
                  random_state=self.random_state)
        Z = pca.fit_transform(X)
        self.components_ = pca.components_
        scores = np.zeros(len(X), dtype=np.float64)
        for c in np.unique(y):
            members = np.flatnonzero(y == c)
            centre = np.median(Z[members], axis=0)
            scores[members] = robust_z(np.linalg.norm(Z[members] - centre, axis=1))
        return scores

    def _auto_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        return float(self.z_threshold)


def robust_z(values: np.ndarray) -> np.ndarray:
    """(values - median) / (1.4826 * MAD), with a floor on the MAD so constant values give zeros."""
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med))) * MAD_TO_SIGMA
    return (values - med) / max(mad, 1e-12)
