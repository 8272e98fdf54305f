"""The ``results.json`` contract: its format tag, typed rows, aggregation over seeds, and reading it back.

Written by :mod:`poisonlab.experiment`, read by :mod:`poisonlab.report` and by users; this module needs
NumPy only (no torch, no runner), so a report can be re-made anywhere from the JSON alone.

Layout (fractions in 0..1, seconds in wall time)::

    {
      "format": "poisonlab-results/1", "poisonlab_version", "created", "torch_version",
      "machine": {"platform", "cpu", "cpu_count", "threads", "python", "precision", "training_workers",
                  "threads_per_worker"},
      "config": {...ExperimentConfig.to_dict()},
      "seeds": [0, 1, ...],
      "dataset": {"name", "n_train", "n_test", "classes"},
      "primary_attack": "label-flip",
      "attacks": {
        "<attack label>": {
          "attack": {"name", "params", "record" (the attack's own record, e.g. FGSM's eps_pixel),
                     "n_poison", "rate_of_train",
                     "backdoor": {"target_class", "source_class", "n_triggered"} (backdoor attacks only;
                     the attacked test images are those of every class but the target, or of the source)},
          "scenarios": {
            "clean" | "attacked" | "<defense>": {
              "accuracy", "per_class_accuracy" [K], "per_class_misclassification" [K],
              "confusion_matrix" [K][K], "n_test", "n_train", "seconds",
              # attacked: "seconds_attack", "seconds_train"
              # defenses: "seconds_features", "seconds_detect", "seconds_retrain" (their sum is "seconds"),
              #           "precision", "recall", "f1", "roc_auc", "removed", "poisons_removed",
              #           "clean_removed", "poisons_kept", "n_poison", "n_samples";
              #           optional (absent in older files), threshold-free views of the scores:
              #           "average_precision", "f1_at_true_rate" (flagging exactly n_poison samples, an
              #           oracle diagnostic), "pr_precision" [101] (interpolated precision at recall
              #           0, 0.01, ..., 1), "roc_tpr" [101] (true-positive rate at false-positive rate
              #           0, 0.01, ..., 1)
              # targeted attacks (gradient matching): "target_success_rate" (share of the targets in
              #           their adversarial class; for "clean" the base rate without poisons)
              # backdoor attacks (badnets, blend), optional (absent in older files):
              #           "attack_success_rate" (share of the triggered attacked test images classified
              #           as the target; for "clean" the base rate of the trigger alone),
              #           "robust_accuracy" (share of them still classified as their true class)
              "std": {same numeric keys: standard deviation over seeds (ddof=1), null with one seed},
              "per_seed": [{the same values for each seed, in the order of "seeds"}]
            }
          },
          "projections": {"<seed>": "projections/<attack>-seed<seed>.npz"},
          "targets": {"<seed>": {"indices", "true_labels", "adversarial_classes",
                                 "predicted": {"<scenario>": [class per target]}}}  (targeted attacks)
        }
      },
      "scenarios": the primary attack's "scenarios" (the paper's comparison),
      "timing": {"total_seconds", "computed_seconds", "stages": [{"stage", "attack", "defense", "seed",
                 "seconds", "cached", "finished_at" (seconds since the run started)}]}
    }

Top-level scenario values are the mean over seeds. A projection ``.npz`` holds ``xy`` (n, 2) float32
(PCA-2 of the attacked model's activations of a fixed random sample of training points), ``index`` (n,),
``labels`` (n,), ``is_poison`` (n,) bool, ``defenses`` (D,) str and ``flagged`` (D, n) bool.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from poisonlab.errors import PoisonlabError

RESULTS_FORMAT = "poisonlab-results/1"
# the scenarios every attack has; every other scenario is named after a defense
BASELINE_SCENARIOS: tuple[str, ...] = ("clean", "attacked")


class Scenario(TypedDict, total=False):
    """One row of the paper's tables for one seed (``per_seed`` entries) or the mean over seeds."""

    accuracy: float
    per_class_accuracy: list[float | None]
    per_class_misclassification: list[float | None]
    confusion_matrix: list[list[float]]
    n_test: int
    n_train: int
    seconds: float
    seconds_attack: float
    seconds_train: float
    seconds_features: float
    seconds_detect: float
    seconds_retrain: float
    precision: float | None
    recall: float | None
    f1: float | None
    roc_auc: float | None
    removed: int
    poisons_removed: int
    clean_removed: int
    poisons_kept: int
    n_poison: int
    n_samples: int
    average_precision: float | None
    f1_at_true_rate: float | None
    pr_precision: list[float] | None
    roc_tpr: list[float] | None
    target_success_rate: float
    attack_success_rate: float | None
    robust_accuracy: float | None
    std: dict[str, Any]
    per_seed: list[dict[str, Any]]


class TargetOutcome(TypedDict):
    """A targeted attack's targets for one seed, and what each scenario's model predicted for them."""

    indices: list[int]
    true_labels: list[int]
    adversarial_classes: list[int]
    predicted: dict[str, list[int]]


class AttackSummary(TypedDict):
    name: str
    params: dict[str, Any]
    record: dict[str, Any]
    n_poison: int
    rate_of_train: float


class AttackEntry(TypedDict):
    attack: AttackSummary
    scenarios: dict[str, Scenario]
    projections: dict[str, str]
    targets: dict[str, TargetOutcome]


class Results(TypedDict):
    format: str
    poisonlab_version: str
    created: str
    torch_version: str
    machine: dict[str, Any]
    config: dict[str, Any]
    seeds: list[int]
    dataset: dict[str, Any]
    primary_attack: str
    attacks: dict[str, AttackEntry]
    scenarios: dict[str, Scenario]
    timing: dict[str, Any]


# ----------------------------------------------------------------------------------------------- seeds

def mean_std(values: list[Any]) -> tuple[Any, Any]:
    """Elementwise mean and sample std (ddof=1) of numbers or nested lists of numbers.

    With one value the mean is that value and the std is ``None`` (no spread is known, which is not a
    spread of 0); ``None`` entries (a metric undefined in some seed) are left out of both.
    """
    if values and all(isinstance(v, list) for v in values):
        pairs = [mean_std([v[i] for v in values]) for i in range(len(values[0]))]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not numbers:
        return None, None
    if len(values) == 1:
        return values[0], None
    mean = float(np.mean(numbers))
    return mean, (float(np.std(numbers, ddof=1)) if len(numbers) > 1 else None)


def aggregate_scenarios(per_seed: list[dict[str, Any]]) -> Scenario:
    """Mean over seeds at the top level, ``std`` beside it and every seed's values in ``per_seed``."""
    out: dict[str, Any] = {}
    for key in per_seed[0]:
        # .get: a key added in a later version is missing from seeds whose stages an older one stored
        mean, std = mean_std([s.get(key) for s in per_seed])
        out[key] = mean
        if key != "confusion_matrix":
            out.setdefault("std", {})[key] = std
    out["per_seed"] = per_seed
    return out  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------- files

def slug(name: str) -> str:
    """A file-name-safe form of an attack or defense label (``pca+kmeans`` -> ``pca_kmeans``)."""
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def load_results(run_dir: str | os.PathLike) -> Results:
    """Read and check ``run_dir/results.json`` (or a results file given directly).

    Raises :class:`PoisonlabError` for a missing or unreadable file, another format, or a structure that
    a report could not be rendered from (naming the first key that is wrong).
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise PoisonlabError(f"{path}: no results.json here; run 'poisonlab reproduce' or 'poisonlab run' "
                             "first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonlabError(f"{path}: cannot read results: {exc}") from None
    found = results.get("format") if isinstance(results, dict) else None
    if found != RESULTS_FORMAT:
        what = f"format {found!r}" if isinstance(found, str) else "no 'format' tag"
        raise PoisonlabError(f"{path}: not a poisonlab results file ({what}; expected {RESULTS_FORMAT!r})")
    problem = _structure_problem(results)
    if problem:
        raise PoisonlabError(f"{path}: malformed results ({problem})")
    return results  # type: ignore[return-value]


def _structure_problem(results: dict[str, Any]) -> str | None:
    """The first place where ``results`` breaks the layout above, or None."""
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for key, kind in (("dataset", dict), ("attacks", dict), ("config", dict), ("seeds", list),
                      ("primary_attack", str)):
        if not isinstance(results.get(key), kind):
            return f"{key!r} must be a {kind.__name__}"
    dataset = results["dataset"]
    classes = dataset.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        return "'dataset.classes' must be a list of class names"
    for key in ("n_train", "n_test"):
        if not number(dataset.get(key)):
            return f"'dataset.{key}' must be a number"
    if results["primary_attack"] not in results["attacks"]:
        return f"'primary_attack' {results['primary_attack']!r} is not among the attacks"
    for label, entry in results["attacks"].items():
        where = f"attacks.{label}"
        if not isinstance(entry, dict) or not isinstance(entry.get("scenarios"), dict) \
                or not isinstance(entry.get("attack"), dict):
            return f"'{where}' must hold 'attack' and 'scenarios' tables"
        for name in BASELINE_SCENARIOS:
            if name not in entry["scenarios"]:
                return f"'{where}.scenarios' has no {name!r} scenario"
        for name, scenario in entry["scenarios"].items():
            if not isinstance(scenario, dict) or not number(scenario.get("accuracy")):
                return f"'{where}.scenarios.{name}.accuracy' must be a number"
            per_class = scenario.get("per_class_accuracy")
            if not isinstance(per_class, list) or len(per_class) != len(classes) \
                    or not all(v is None or number(v) for v in per_class):
                return f"'{where}.scenarios.{name}.per_class_accuracy' must list one number per class"
            matrix = scenario.get("confusion_matrix")
            if not isinstance(matrix, list) or len(matrix) != len(classes) or not all(
                    isinstance(row, list) and len(row) == len(classes) and all(number(v) for v in row)
                    for row in matrix):
                return f"'{where}.scenarios.{name}.confusion_matrix' must be {len(classes)} x {len(classes)} numbers"
        for key in ("projections", "targets"):
            if not isinstance(entry.get(key, {}), dict):
                return f"'{where}.{key}' must be a table"
    return None


__all__ = ["AttackEntry", "AttackSummary", "BASELINE_SCENARIOS", "RESULTS_FORMAT", "Results", "Scenario",
           "TargetOutcome", "aggregate_scenarios", "load_results", "mean_std", "slug"]
