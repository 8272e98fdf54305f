"""poisonlab: data-poisoning attacks and filtering defenses for image classifiers.

The Python API, end to end::

    import poisonlab as pl

    ds = pl.load_dataset("digits")
    poisoned = pl.make_attack("label-flip", rate=0.1).poison(ds, seed=0)
    model = pl.train(poisoned.x_train, poisoned.y_train, num_classes=poisoned.num_classes).model
    X = pl.extract_features(model, poisoned.x_train)
    detector = pl.make_detector("deep-knn").fit(X, poisoned.y_train)
    pl.detection_metrics(poisoned.is_poison, detector.flagged_, detector.scores_)

Names resolve on first use, so that ``import poisonlab.report`` (which needs no torch) stays free of torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from poisonlab.errors import PoisonlabError  # noqa: E402

# public name -> the module that defines it
_API: dict[str, str] = {
    "Dataset": "poisonlab.data", "PoisonedDataset": "poisonlab.data", "load_dataset": "poisonlab.data",
    "load_poisoned": "poisonlab.data",
    "ATTACKS": "poisonlab.attacks", "Attack": "poisonlab.attacks", "make_attack": "poisonlab.attacks",
    "MODELS": "poisonlab.models", "build_model": "poisonlab.models",
    "TrainConfig": "poisonlab.training", "train": "poisonlab.training", "evaluate": "poisonlab.inference",
    "extract_features": "poisonlab.inference",
    "DETECTORS": "poisonlab.defenses", "Detector": "poisonlab.defenses", "make_detector": "poisonlab.defenses",
    "compute_features": "poisonlab.defenses", "detection_metrics": "poisonlab.defenses",
    "run_defense": "poisonlab.defenses", "DefenseResult": "poisonlab.defenses",
    "validate_poisoned": "poisonlab.validation",
    "ExperimentConfig": "poisonlab.experiment", "AttackSpec": "poisonlab.experiment",
    "load_config": "poisonlab.experiment", "run_experiment": "poisonlab.experiment",
    "load_sweep_spec": "poisonlab.experiment", "run_sweep": "poisonlab.experiment", "make_engine": "poisonlab.experiment",
    "load_sweep": "poisonlab.sweep_results",
    "load_results": "poisonlab.results", "render_report": "poisonlab.report",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'poisonlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = ["PoisonlabError", "__version__", *sorted(_API)]
