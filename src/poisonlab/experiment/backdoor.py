"""The backdoor stage of a run: every model of a backdoor attack (clean, attacked, each defense's
retraining) classifies the triggered attacked test images, and its scenario gains the attack success rate
and robust accuracy (:func:`~poisonlab.attacks.backdoor_metrics`).

The clean model's rate is the base rate: how often the trigger alone moves an image to the target. Each
model's scores are a stage of their own (``backdoor-<key>``, keyed by the model's training stage and the
triggered images), so a resumed run does not classify again, and two runs of one store share the work.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from poisonlab import __version__
from poisonlab.attacks import BackdoorRecord, backdoor_metrics
from poisonlab.data import Dataset
from poisonlab.experiment.jobs import TrainedModel
from poisonlab.experiment.store import StageStore, array_fingerprint, digest
from poisonlab.results import Scenario
from poisonlab.training import predict_logits

BACKDOOR_KEYS = ("attack_success_rate", "robust_accuracy")


def backdoor_outcome(record: BackdoorRecord, models: dict[str, TrainedModel], scenarios: dict[str, Scenario],
                     ds: Dataset, store: StageStore, *, lock: threading.Lock | None = None) -> dict[str, Any]:
    """Add :data:`BACKDOOR_KEYS` to each scenario in ``scenarios`` from its model in ``models``; return
    ``{"target_class", "source_class", "n_triggered"}`` for the attack's entry.

    ``lock`` serialises the stage with other runners of the same store (a sweep's cells)."""
    x_trig, index = record.triggered_test_set(ds.x_test, ds.y_test)
    y_trig = ds.y_test[index]
    triggered = array_fingerprint(x_trig)
    for name, model in models.items():
        key = digest({"stage": "backdoor", "model": model.key, "triggered": triggered, "target": record.target_class,
                      "version": __version__})
        with lock or threading.Lock():
            scores = store.load("backdoor", key)
            if scores is None:
                start = time.perf_counter()
                config = model.train_config
                pred = predict_logits(model.model(), x_trig, precision=config.resolved_precision(),
                                      tta=config.resolved_tta(ds.channels)).argmax(axis=1)
                scores = backdoor_metrics(pred, y_trig, record.target_class)
                scores["seconds"] = round(time.perf_counter() - start, 3)
                store.save("backdoor", key, scores)
        scenarios[name].update({k: scores[k] for k in BACKDOOR_KEYS})  # type: ignore[typeddict-item]
    return {"target_class": record.target_class, "source_class": record.source_class, "n_triggered": int(len(index))}


__all__ = ["BACKDOOR_KEYS", "backdoor_outcome"]
