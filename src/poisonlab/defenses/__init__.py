"""Filtering defenses: detectors (scikit-learn estimators), feature spaces, detection metrics."""

from __future__ import annotations

from typing import Any

from poisonlab.defenses.base import Detector
from poisonlab.defenses.metrics import detection_metrics
from poisonlab.errors import PoisonlabError

# name -> Detector subclass; each detector module adds itself here.
DETECTORS: dict[str, type[Detector]] = {}


def register(name: str):
    def deco(cls: type[Detector]) -> type[Detector]:
        DETECTORS[name] = cls
        cls.registered_name = name
        return cls
    return deco


def make_detector(name: str, **params: Any) -> Detector:
    """A detector by registered name, e.g. ``make_detector("pca+kmeans", contamination="auto")``."""
    _load_all()
    if name not in DETECTORS:
        raise PoisonlabError(f"unknown defense {name!r}; choose one of {', '.join(sorted(DETECTORS))}")
    try:
        return DETECTORS[name](**params)
    except TypeError as exc:
        raise PoisonlabError(f"defense {name!r}: {exc}") from None


def _load_all() -> None:
    import importlib  # noqa: PLC0415

    for module in _DETECTOR_MODULES:
        importlib.import_module(f"poisonlab.defenses.{module}")


_DETECTOR_MODULES: tuple[str, ...] = ("activation_clustering", "spectral", "deep_knn", "confident_learning",
                                     "pca", "cluster", "knn")

__all__ = ["DETECTORS", "Detector", "detection_metrics", "make_detector", "register"]
