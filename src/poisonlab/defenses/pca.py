"""The paper's PCA defense: project onto the principal subspace, flag samples far from their labelled class.

A PCA with ``n_components`` components is fitted on all the features being filtered (the poisons are a
small share, so the leading directions are the clean data's). In that subspace every label ``c`` gets a
robust centre, the coordinate-wise median of the samples labelled ``c`` (a 10% label flip does not move
a median much, unlike a mean or a per-class PCA, whose leading direction would point at the far-away
poisons). Two pieces of evidence, each scaled so that 1 is the flagging line:

- *remote*: the distance from the labelled class's centre as a robust z-score within that class (median
  and MAD of the class's distances), divided by ``z_threshold``; it catches samples that sit apart from
  their class (perturbed images). Clean samples far out are hard, useful examples: a lower cut removes
  them and costs test accuracy after retraining, hence the high default 5 (see
  docs/measurements.md).
- *outvoted*: twice the label-share disagreement among the ``n_neighbors`` nearest samples in the
  subspace (see :func:`poisonlab.defenses.deep_knn.share_disagreement`): above 1 when the sample's
  label holds less than half the share of the best label around it. It catches flipped labels, also a
  heavy targeted flip (48% of the 2s relabelled 8) whose poisons sit among as many true 8 labels.

The score is the larger of the two and ``"auto"`` flags ``score > 1``.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from poisonlab.defenses.base import Detector, check_integer, check_random_state, check_real
from poisonlab.defenses.deep_knn import neighbour_votes, share_disagreement
from poisonlab.errors import PoisonlabError

MAD_TO_SIGMA = 1.4826  # 1.4826 * MAD estimates a normal standard deviation


class PCADetector(Detector):
    """Far from the labelled class's median, or outvoted by its neighbours' labels, in the principal subspace.

    Parameters
    ----------
    n_components : int
        Principal components (capped by the number of samples and features).
    contamination : float in [0, 0.5] or "auto"
        ``"auto"`` flags ``score > 1`` (see the module docstring; no poison rate needed).
    z_threshold : float
        The robust z-score at which the *remote* evidence reaches 1 (default 5, see the module docstring;
        with the z-score alone a lower cut catches more FGSM poisons in pixel space, see
        docs/measurements.md).
    n_neighbors : int
        Neighbours of the label-share vote.
    random_state : int
        Seeds the randomized SVD.

    Attributes
    ----------
    scores_, threshold_, flagged_ : see :class:`~poisonlab.defenses.base.Detector`
    components_ : np.ndarray (n_components, D)
        The principal directions.
    """

    def __init__(self, *, n_components: int = 10, contamination: float | str = "auto", z_threshold: float = 5.0,
                 n_neighbors: int = 20, random_state: int = 0) -> None:
        self.n_components = n_components
        self.contamination = contamination
        self.z_threshold = z_threshold
        self.n_neighbors = n_neighbors
        self.random_state = random_state

    def _check_params(self) -> None:
        super()._check_params()
        check_integer("n_components", self.n_components)
        check_real("z_threshold", self.z_threshold, low=0.0, low_open=True)
        check_integer("n_neighbors", self.n_neighbors)
        check_random_state("random_state", self.random_state)

    def _score(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        k = min(int(self.n_components), *X.shape)
        pca = PCA(n_components=k, svd_solver="randomized" if k < min(X.shape) // 2 else "full",
                  random_state=self.random_state)
        Z = pca.fit_transform(X)
        self.components_ = pca.components_
        _, label_idx = np.unique(y, return_inverse=True)
        remote = np.zeros(len(X), dtype=np.float64)
        for c in range(int(label_idx.max()) + 1):
            members = label_idx == c
            centre = np.median(Z[members], axis=0)
            remote[members] = robust_z(np.linalg.norm(Z[members] - centre, axis=1)) / float(self.z_threshold)
        k = min(int(self.n_neighbors), len(Z) - 1)
        if k < 1:
            raise PoisonlabError(f"the PCA defense needs at least 2 samples, got {len(Z)}")
        outvoted = 2.0 * share_disagreement(neighbour_votes(Z, label_idx, k), label_idx)
        self.remote_, self.outvoted_ = remote, outvoted
        return np.maximum(remote, outvoted)

    def _auto_threshold(self, scores: np.ndarray, y: np.ndarray) -> float:
        return 1.0


def robust_z(values: np.ndarray) -> np.ndarray:
    """(values - median) / (1.4826 * MAD), with a floor on the MAD so constant values give zeros."""
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med))) * MAD_TO_SIGMA
    return (values - med) / max(mad, 1e-12)
