"""Filtering defenses: detectors (scikit-learn estimators), feature spaces, detection metrics."""

from __future__ import annotations

from typing import Any, Callable

from poisonlab.defenses.base import Detector
from poisonlab.defenses.metrics import detection_metrics
from poisonlab.registry import Registry

# name -> Detector subclass; each module listed here registers its detectors when imported.
DETECTORS: Registry[Detector] = Registry("defense", "poisonlab.defenses", (
    "pca", "cluster", "knn", "activation_clustering", "spectral", "deep_knn", "confident_learning"))


def register(name: str) -> Callable[[type[Detector]], type[Detector]]:
    def deco(cls: type[Detector]) -> type[Detector]:
        cls.registered_name = name
        return DETECTORS.add(name, cls)
    return deco


def make_detector(name: str, **params: Any) -> Detector:
    """A detector by registered name, e.g. ``make_detector("pca+kmeans", contamination="auto")``."""
    return DETECTORS.make(name, **params)


__all__ = ["DETECTORS", "Detector", "detection_metrics", "make_detector", "register"]
