"""Run one defense on one poisoned dataset and score it against the ground truth.

The experiment runner calls :func:`run_defense` once per defense. To compute a feature space once and
reuse it across defenses, pass the same ``feature_cache`` dict to every call for one poisoned dataset
(its keys are ``(features, seed)``; a cached entry keeps the seconds it took the first time), or call
:func:`~poisonlab.defenses.features.compute_features` yourself and put its result in the cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from poisonlab.data.dataset import PoisonedDataset
from poisonlab.defenses import make_detector
from poisonlab.defenses.base import check_class_coverage
from poisonlab.defenses.features import compute_features
from poisonlab.defenses.metrics import detection_metrics
from poisonlab.errors import PoisonlabError

FeatureCache = dict[tuple[str, int], tuple[np.ndarray, dict[str, Any]]]


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
        ``flagged == scores > threshold``.
    metrics : dict
        :func:`~poisonlab.defenses.metrics.detection_metrics` plus ``defense``, ``features``,
        ``seconds_features`` (for cached features: the seconds of their first computation),
        ``features_cached``, ``seconds_detect`` (the detector's fit alone), ``threshold``,
        ``contamination``, ``seed``, ``params`` and ``feature_info``.
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


def run_defense(poisoned: PoisonedDataset, defense: str, *, features: str = "activations", seed: int = 0,
                model: Any = None, train_config: Any = None, detector_params: dict[str, Any] | None = None,
                feature_cache: FeatureCache | None = None, on_empty_class: str = "warn",
                progress: bool = False) -> DefenseResult:
    """Compute (or reuse) features of ``poisoned``'s training set, fit the detector, score it.

    Parameters
    ----------
    poisoned : PoisonedDataset
        Its ``is_poison`` mask is the ground truth; its (poisoned) labels are what the detector sees.
    defense : str
        A registered detector name (see :data:`poisonlab.defenses.DETECTORS`).
    features : str
        ``"pixels"``, ``"pca"`` or ``"activations"`` (see :func:`compute_features`).
    seed : int
        Seeds the features (PCA, the trained model) and the detector's ``random_state`` unless
        ``detector_params`` sets it.
    model : torch.nn.Module, optional
        A model already trained on ``poisoned`` for ``"activations"`` (else one is trained here).
    train_config : poisonlab.training.TrainConfig, optional
        For the model trained here (default ``TrainConfig(seed=seed)``).
    detector_params : dict, optional
        Keyword arguments of the detector, e.g. ``{"contamination": 0.1}``.
    feature_cache : dict, optional
        Shared across calls on the same poisoned dataset (and model) to compute each feature space once.
    on_empty_class : {"warn", "error"}
        What to do when the defense would remove every training sample of a class.
    progress : bool
        Progress bars while training a model for the activations.

    Returns
    -------
    DefenseResult
    """
    if on_empty_class not in ("warn", "error"):
        raise PoisonlabError(f"on_empty_class must be 'warn' or 'error', got {on_empty_class!r}")
    params = dict(detector_params or {})
    detector = make_detector(defense, **params)
    if "random_state" in detector.get_params() and "random_state" not in params:
        detector.set_params(random_state=seed)

    key = (features, int(seed))
    cached = feature_cache is not None and key in feature_cache
    if cached:
        X, info = feature_cache[key]  # type: ignore[index]
    else:
        X, info = compute_features(features, poisoned.x_train, poisoned.y_train, num_classes=poisoned.num_classes,
                                   model=model, seed=seed, train_config=train_config, progress=progress)
        if feature_cache is not None:
            feature_cache[key] = (X, info)
    if len(X) != len(poisoned.y_train):
        raise PoisonlabError(f"cached {features} features have {len(X)} rows for {len(poisoned.y_train)} samples; "
                             "use one feature_cache per poisoned dataset")

    start = time.perf_counter()
    detector.fit(X, poisoned.y_train)
    seconds_detect = time.perf_counter() - start
    flagged = np.asarray(detector.flagged_, dtype=bool)
    check_class_coverage(flagged, poisoned.y_train, action=on_empty_class)

    metrics = detection_metrics(poisoned.is_poison, flagged, detector.scores_)
    metrics.update(
        defense=defense, features=features, seed=int(seed),
        seconds_features=float(info["seconds"]), features_cached=bool(cached),
        seconds_detect=round(seconds_detect, 4), threshold=float(detector.threshold_),
        contamination=detector.get_params().get("contamination", "auto"),
        params=json_params(detector.get_params()), feature_info=info,
    )
    return DefenseResult(flagged=flagged, scores=detector.scores_, threshold=float(detector.threshold_),
                         metrics=metrics)


def json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Detector parameters with anything that is not a JSON scalar (estimators, arrays) as its repr."""
    return {k: v if v is None or isinstance(v, (bool, int, float, str)) else repr(v) for k, v in params.items()}
