"""Run one defense on one poisoned dataset and score it against the ground truth.

A *detector* is the estimator (``fit(X, y)`` sets ``scores_`` and ``flagged_``); a *defense* is what
the experiment does with one: detect on a feature space, drop what it flags, retrain. Three steps, each
usable alone:

- :func:`seeded_detector`: a detector by name, following the run's seed unless its parameters pin one;
- :func:`detect_poisons`: fit it on features and score what it flagged against ``is_poison``;
- :func:`run_defense`: both, on a feature space computed here (or given), for one call from user code.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from poisonlab.data.dataset import PoisonedDataset
from poisonlab.defenses.base import Detector, check_class_coverage
from poisonlab.defenses.catalog import make_detector
from poisonlab.defenses.features import compute_features
from poisonlab.defenses.metrics import detection_metrics
from poisonlab.errors import PoisonlabError

EMPTY_CLASS_ACTIONS = ("warn", "error")


@dataclass(frozen=True, eq=False)
class DefenseResult:
    """What one defense decided and how well that matched the ground truth.

    Attributes
    ----------
    flagged : np.ndarray (N_train,) bool
        True = the defense removes the sample.
    scores : np.ndarray (N_train,) float64
        Suspicion scores (higher = more suspicious).
    threshold : float
        ``flagged == scores > threshold`` under ``contamination="auto"``; under a numeric contamination
        the samples tied at ``threshold`` may be flagged too, lowest index first, so that exactly
        ``round(contamination * N)`` are (:func:`~poisonlab.defenses.base.flag_top_share`).
    metrics : dict
        :func:`~poisonlab.defenses.metrics.detection_metrics` plus ``seconds_detect`` (the detector's fit
        alone), ``threshold``, ``contamination`` and ``params``; from :func:`run_defense` also
        ``defense``, ``features``, ``seed``, ``seconds_features`` and ``feature_info``.
    """

    flagged: np.ndarray
    scores: np.ndarray
    threshold: float
    metrics: dict[str, Any]

    @property
    def kept(self) -> np.ndarray:
        """The keep-mask (N_train,) bool for :meth:`PoisonedDataset.keep`."""
        return ~self.flagged

    @property
    def flagged_indices(self) -> np.ndarray:
        return np.flatnonzero(self.flagged)


def seeded_detector(defense: str, params: Mapping[str, Any] | None = None, seed: int = 0) -> Detector:
    """``make_detector(defense, **params)`` whose ``random_state`` (if it has one) is ``seed``, unless
    ``params`` sets it: a detector's randomness follows the experiment's seed."""
    params = dict(params or {})
    detector = make_detector(defense, **params)
    if "random_state" in detector.get_params() and "random_state" not in params:
        detector.set_params(random_state=seed)
    return detector


def detect_poisons(detector: Detector, X: np.ndarray, poisoned: PoisonedDataset, *,
                   on_empty_class: str = "warn") -> DefenseResult:
    """Fit ``detector`` on features ``X`` (N_train, D) and the poisoned labels; score it against the mask.

    ``on_empty_class``: ``"warn"`` or ``"error"`` when the defense would remove every training sample of
    a class.
    """
    if on_empty_class not in EMPTY_CLASS_ACTIONS:
        raise PoisonlabError(f"on_empty_class must be 'warn' or 'error', got {on_empty_class!r}")
    if len(X) != len(poisoned.y_train):
        raise PoisonlabError(f"features have {len(X)} rows for {len(poisoned.y_train)} training samples")
    start = time.perf_counter()
    detector.fit(X, poisoned.y_train)
    seconds_detect = time.perf_counter() - start
    flagged = np.asarray(detector.flagged_, dtype=bool)
    check_class_coverage(flagged, poisoned.y_train, action=on_empty_class)
    metrics = detection_metrics(poisoned.is_poison, flagged, detector.scores_)
    metrics.update(seconds_detect=round(seconds_detect, 4), threshold=float(detector.threshold_),
                   contamination=detector.get_params().get("contamination", "auto"),
                   params=json_params(detector.get_params()))
    return DefenseResult(flagged=flagged, scores=detector.scores_, threshold=float(detector.threshold_),
                         metrics=metrics)


def run_defense(poisoned: PoisonedDataset, defense: str, *, features: str | np.ndarray = "activations",
                feature_info: dict[str, Any] | None = None, seed: int = 0, model: Any = None,
                train_config: Any = None, detector_params: Mapping[str, Any] | None = None,
                on_empty_class: str = "warn", progress: bool = False) -> DefenseResult:
    """Compute features of ``poisoned``'s training set (or take them), fit the detector, score it.

    Parameters
    ----------
    poisoned : PoisonedDataset
        Its ``is_poison`` mask is the ground truth; its (poisoned) labels are what the detector sees.
    defense : str
        A registered detector name (see :data:`poisonlab.defenses.DETECTORS`).
    features : str or np.ndarray (N_train, D)
        A feature space, ``"pixels"``, ``"pca"`` or ``"activations"`` (see :func:`compute_features`), or
        features computed already (one :func:`compute_features` call can serve several defenses).
    feature_info : dict, optional
        With precomputed features: their record from :func:`compute_features` (for ``seconds_features``).
    seed : int
        Seeds the features (PCA, the trained model) and the detector's ``random_state`` unless
        ``detector_params`` sets it.
    model : torch.nn.Module, optional
        A model already trained on ``poisoned`` for ``"activations"`` (else one is trained here).
    train_config : poisonlab.training.TrainConfig, optional
        For the model trained here (default ``TrainConfig(seed=seed)``).
    detector_params : dict, optional
        Keyword arguments of the detector, e.g. ``{"contamination": 0.1}``.
    on_empty_class : {"warn", "error"}
        What to do when the defense would remove every training sample of a class.
    progress : bool
        Progress bars while training a model for the activations.
    """
    detector = seeded_detector(defense, detector_params, seed)
    if isinstance(features, str):
        X, info = compute_features(features, poisoned.x_train, poisoned.y_train, num_classes=poisoned.num_classes,
                                   model=model, seed=seed, train_config=train_config, progress=progress)
    else:
        X = np.asarray(features)
        info = dict(feature_info) if feature_info is not None else {
            "features": "given", "dim": int(X.shape[1]) if X.ndim == 2 else None, "seconds": 0.0}
    result = detect_poisons(detector, X, poisoned, on_empty_class=on_empty_class)
    result.metrics.update(defense=defense, features=info.get("features", "given"), seed=int(seed),
                          seconds_features=float(info.get("seconds", 0.0)), feature_info=info)
    return result


def json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Detector parameters with anything that is not a JSON scalar (estimators, arrays) as its repr."""
    return {k: v if v is None or isinstance(v, (bool, int, float, str)) else repr(v) for k, v in params.items()}


__all__ = ["DefenseResult", "detect_poisons", "json_params", "run_defense", "seeded_detector"]
