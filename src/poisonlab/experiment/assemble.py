"""Rows of the paper's tables from stage records, and ``results.json`` from the rows of every seed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import torch

from poisonlab import __version__
from poisonlab.attacks import TargetedRecord
from poisonlab.data import Dataset
from poisonlab.experiment.config import ExperimentConfig
from poisonlab.experiment.jobs import TrainedModel
from poisonlab.parallel import threads_per_worker
from poisonlab.results import (RESULTS_FORMAT, AttackEntry, AttackSummary, Results, Scenario, TargetOutcome,
                               aggregate_scenarios)
from poisonlab.training import machine_info

EVAL_KEYS = ("accuracy", "per_class_accuracy", "per_class_misclassification", "confusion_matrix", "n_test")
DETECTION_KEYS = ("precision", "recall", "f1", "roc_auc", "removed", "poisons_removed", "clean_removed",
                  "poisons_kept", "n_poison", "n_samples", "average_precision", "f1_at_true_rate", "pr_precision",
                  "roc_tpr")


@dataclass(frozen=True)
class AttackRun:
    """One attack under one seed: its scenarios (clean, attacked, one per defense), the saved projection's
    path, and the targets' outcomes for a targeted attack."""

    summary: AttackSummary
    scenarios: dict[str, Scenario]
    projection: str | None
    targets: TargetOutcome | None


def scenario_row(train_record: dict[str, Any], *, seconds_attack: float | None = None,
                 features_seconds: float | None = None, detection: dict[str, Any] | None = None) -> Scenario:
    """One row of the paper's tables: test metrics, timings, and a defense's detection metrics."""
    s: dict[str, Any] = {k: train_record[k] for k in EVAL_KEYS}
    s["n_train"] = train_record["n_train"]
    if detection is None:
        s["seconds"] = train_record["seconds"]
        if seconds_attack is not None:
            s.update(seconds_train=train_record["seconds"], seconds_attack=seconds_attack)
        return s  # type: ignore[return-value]
    assert features_seconds is not None
    s.update(seconds_features=features_seconds, seconds_detect=detection["seconds"],
             seconds_retrain=train_record["seconds"])
    s["seconds"] = round(features_seconds + detection["seconds"] + train_record["seconds"], 3)
    # .get: a detect stage stored before the threshold-free views existed lacks them (the report shows n/a)
    s.update({k: detection.get(k) for k in DETECTION_KEYS})
    return s  # type: ignore[return-value]


def target_outcome(targeted: TargetedRecord | None, models: dict[str, TrainedModel],
                   scenarios: dict[str, Scenario], y_test: np.ndarray) -> TargetOutcome | None:
    """For a targeted attack, add each scenario's ``target_success_rate`` (share of targets classified as
    their adversarial class; for ``clean``, the base rate without poisons) and return the per-target
    predictions; ``None`` for an untargeted attack."""
    if targeted is None or not targeted.targets:
        return None
    targets, adversarial = targeted.target_array(), targeted.adversarial_array()
    predicted = {}
    for name, model in models.items():
        pred = model.test_predictions()
        if pred is None:  # a stage stored by a version without predictions
            continue
        predicted[name] = [int(p) for p in pred[targets]]
        scenarios[name]["target_success_rate"] = float(np.mean(pred[targets] == adversarial))
    return {"indices": targets.tolist(), "true_labels": [int(y) for y in y_test[targets]],
            "adversarial_classes": adversarial.tolist(), "predicted": predicted}


def assemble_results(config: ExperimentConfig, ds: Dataset, per_seed: dict[int, dict[str, AttackRun]],
                     timeline: list[dict[str, Any]], *, total_seconds: float) -> Results:
    """``results.json``'s content (see :mod:`poisonlab.results`) from every seed's :class:`AttackRun` s."""
    seeds = list(per_seed)
    attacks: dict[str, AttackEntry] = {}
    for spec in config.attacks:
        runs = [per_seed[s][spec.label] for s in seeds]
        names = list(runs[0].scenarios)
        attacks[spec.label] = {
            "attack": runs[0].summary,
            "scenarios": {n: aggregate_scenarios([r.scenarios[n] for r in runs]) for n in names},
            "projections": {str(s): r.projection for s, r in zip(seeds, runs) if r.projection},
            "targets": {str(s): r.targets for s, r in zip(seeds, runs) if r.targets},
        }
    workers = config.resolved_workers()
    return {
        "format": RESULTS_FORMAT,
        "poisonlab_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "machine": {**machine_info(config.precision), "training_workers": workers,
                    "threads_per_worker": threads_per_worker(workers)},
        "config": config.to_dict(),
        "seeds": seeds,
        "dataset": {"name": ds.name, "n_train": int(len(ds.y_train)), "n_test": int(len(ds.y_test)),
                    "classes": list(ds.classes)},
        "primary_attack": config.primary_attack,
        "attacks": attacks,
        "scenarios": attacks[config.primary_attack]["scenarios"],
        "timing": {"total_seconds": round(total_seconds, 3),
                   "computed_seconds": round(sum(t["seconds"] for t in timeline if not t["cached"]), 3),
                   "stages": timeline},
    }


__all__ = ["AttackRun", "DETECTION_KEYS", "EVAL_KEYS", "assemble_results", "scenario_row", "target_outcome"]
