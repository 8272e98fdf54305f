"""Every detector by name: the registry behind ``--defense NAME``, config ``defenses`` and :func:`make_detector`."""

from __future__ import annotations

from typing import Any

from poisonlab.defenses.activation_clustering import ActivationClustering
from poisonlab.defenses.base import Detector
from poisonlab.defenses.cluster import BirchDetector, DBSCANDetector, KMeansDetector, PCAKMeansDetector
from poisonlab.defenses.confident_learning import ConfidentLearning
from poisonlab.defenses.deep_knn import DeepKNN
from poisonlab.defenses.ensemble import EnsembleDetector
from poisonlab.defenses.knn import KNNDetector
from poisonlab.defenses.pca import PCADetector
from poisonlab.defenses.spectral import SpectralSignatures
from poisonlab.registry import Registry

DETECTORS: Registry[Detector] = Registry("defense", {
    "pca": PCADetector,
    "kmeans": KMeansDetector,
    "pca+kmeans": PCAKMeansDetector,
    "dbscan": DBSCANDetector,
    "birch": BirchDetector,
    "knn": KNNDetector,
    "activation-clustering": ActivationClustering,
    "spectral": SpectralSignatures,
    "deep-knn": DeepKNN,
    "confident-learning": ConfidentLearning,
    "ensemble": EnsembleDetector,
})
# the recommended detector: the default of ``poisonlab detect`` (``poisonlab reproduce`` keeps the paper's)
RECOMMENDED_DETECTOR = "ensemble"


def make_detector(name: str, **params: Any) -> Detector:
    """A detector by registered name with its parameters checked, e.g. ``make_detector("pca+kmeans")``.

    Unknown names, unknown parameters and bad parameter values raise :class:`~poisonlab.errors.PoisonlabError`.
    """
    return DETECTORS.make(name, **params).check_params()


__all__ = ["DETECTORS", "RECOMMENDED_DETECTOR", "make_detector"]
