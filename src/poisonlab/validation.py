"""Validate a targeted poisoning attack the way a victim would meet it: retrain from scratch.

Each run trains a fresh model (a new initialisation and batch order: seeds ``seed .. seed + runs - 1``)
on the poisoned training split, then checks every target test image: the attack succeeds on a target
in a run when the model classifies it as its adversarial class. Clean accuracy is measured on the test
split without the targets. An optional clean-data control trains the same way on the training split
with the poisons removed, which gives the base rate of a target being classified as its adversarial
class without any poisons.

For backdoor attacks (BadNets, blend: the record holds a trigger) every run also classifies the triggered
copies of the attacked test images (every class but the target, or the source class only): the attack
success rate is the share classified as the target, the robust accuracy the share still classified as
their true class; under the clean control the success rate is the base rate of the trigger alone.

For gradient-matching poisons (the attack record lists each target's poison indices) every trained model
is also probed for the alignment the attack optimised: the cosine between the poisons' training gradient
and the target's adversarial gradient (:func:`~poisonlab.attacks.gradient_matching.gradient_alignment`),
for the poisoned images and, when the file keeps them, the unperturbed originals. On the clean-control
models, which never saw the poisons and start from other initialisations, this measures how far the
surrogate's alignment transfers to other models.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from poisonlab.attacks import ATTACKS, BackdoorRecord, TargetedRecord, backdoor_metrics, gradient_alignment
from poisonlab.data.dataset import PoisonedDataset
from poisonlab.errors import PoisonlabError
from poisonlab.results import mean_std
from poisonlab.training import TrainConfig, metrics_from_predictions, predict_logits, train


def validate_poisoned(poisoned: PoisonedDataset, *, runs: int = 3, config: TrainConfig = TrainConfig(),
                      clean_control: bool = False, progress: bool = False) -> dict[str, Any]:
    """Retrain ``runs`` times on ``poisoned`` and measure attack success and clean accuracy.

    Parameters
    ----------
    poisoned : PoisonedDataset
        Its ``attack`` record names the targets (test indices) and their ``adversarial_classes``;
        without them (an untargeted attack) only clean accuracy is reported.
    runs : int
        Independent retrainings; run ``r`` uses ``config.seed + r``.
    config : TrainConfig
        How the victim trains (epochs, batch size, learning rate, precision).
    clean_control : bool
        Also train on the training split minus the poisons, same seeds, and report under ``"control"``.
    progress : bool
        Progress bars while training.

    Returns
    -------
    dict
        ``success_rate`` / ``success_rate_std`` (share of targets classified as their adversarial class,
        mean and sample standard deviation over runs; ``None`` without targets, and the std ``None`` for
        a single run), ``clean_accuracy`` / ``clean_accuracy_std`` (test accuracy without the targets),
        ``targets`` (per target: index, true label, adversarial class, per-run prediction, success and
        adversarial-class probability and, for gradient-matching poisons, ``alignment`` /
        ``alignment_unperturbed`` per run), ``per_run``, ``seeds``, ``config``, ``n_poison``, ``attack``,
        ``max_perturbation`` (largest pixel change in
        units of 1/255, when the file keeps the original pixels) and, if asked, ``control``. For a
        backdoor attack also ``attack_success_rate`` / ``attack_success_rate_std``, ``robust_accuracy`` /
        ``robust_accuracy_std`` (mean and std over runs, per run in ``per_run``), ``n_triggered`` and
        ``target_class``.
    """
    if runs < 1:
        raise PoisonlabError(f"runs must be >= 1, got {runs}")
    targets, adv_classes = attack_targets(poisoned)
    probes = poison_probes(poisoned)
    triggered = backdoor_test_set(poisoned)
    result = _retrain_and_score(poisoned.x_train, poisoned.y_train, poisoned, targets, adv_classes,
                                runs=runs, config=config, progress=progress, desc="victim", probes=probes,
                                triggered=triggered)
    perturbation = poisoned.perturbation()
    result.update(n_poison=poisoned.n_poison, n_train=int(len(poisoned.y_train)), attack=poisoned.attack,
                  surrogate_seed_overlap=_seed_overlap(poisoned, result["seeds"]),
                  max_perturbation=int(np.abs(perturbation).max()) if perturbation is not None and len(perturbation)
                  else None)
    if clean_control:
        keep = ~poisoned.is_poison
        result["control"] = _retrain_and_score(poisoned.x_train[keep], poisoned.y_train[keep], poisoned, targets,
                                               adv_classes, runs=runs, config=config, progress=progress,
                                               desc="control", probes=probes, triggered=triggered)
        result["control"]["n_train"] = int(keep.sum())
    return result


def targeted_record(poisoned: PoisonedDataset) -> TargetedRecord | None:
    """The attack record's targets, checked against the dataset; ``None`` for an untargeted attack."""
    name = (poisoned.attack or {}).get("name")
    required = name in ATTACKS and ATTACKS[name].targeted
    record = TargetedRecord.from_attack(poisoned.attack, required=required)
    if record is not None:
        record.check_dataset(len(poisoned.y_test), poisoned.num_classes)
    return record


def backdoor_test_set(poisoned: PoisonedDataset) -> tuple[np.ndarray, np.ndarray, int] | None:
    """For a backdoor attack, the triggered attacked test images (M, C, H, W), their true labels (M,) and
    the target class, made from the attack record alone; ``None`` for any other attack."""
    name = (poisoned.attack or {}).get("name")
    record = BackdoorRecord.from_attack(poisoned.attack, required=name in ATTACKS and ATTACKS[name].backdoor)
    if record is None:
        return None
    if not 0 <= record.target_class < poisoned.num_classes:
        raise PoisonlabError("attack record names a backdoor target class outside the label range")
    x, index = record.triggered_test_set(poisoned.x_test, poisoned.y_test)
    return x, poisoned.y_test[index], record.target_class


def attack_targets(poisoned: PoisonedDataset) -> tuple[np.ndarray, np.ndarray]:
    """Target test indices (T,) and their adversarial classes (T,) from the attack record (empty if none)."""
    record = targeted_record(poisoned)
    if record is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return record.target_array(), record.adversarial_array()


def describe_targets(result: dict[str, Any]) -> list[str]:
    """One line per target of a :func:`validate_poisoned` result: runs won and, for gradient matching, the
    alignment on the surrogate (1 - the crafting loss), on the victims and on the clean-control models
    (mean over runs; the unperturbed originals' value in brackets)."""
    lines = []
    control = {t["index"]: t for t in result.get("control", {}).get("targets", [])}
    targeted = TargetedRecord.from_attack(result.get("attack"))
    crafted = targeted.alignment_loss if targeted is not None else ()
    for k, target in enumerate(result["targets"]):
        line = (f"target #{target['index']} ({target['true_label']} -> {target['adversarial_class']}): "
                f"{sum(target['success'])}/{len(target['success'])} runs")
        if "control" in result and target["index"] in control:
            line += f" (without poisons {sum(control[target['index']]['success'])})"
        if k < len(crafted) and target.get("alignment"):
            line += f"; alignment on the surrogate {1 - crafted[k]:.3f}"
        for where, entry in (("victims", target), ("clean-control models", control.get(target["index"]))):
            if entry and entry.get("alignment"):
                line += f", on {where} {np.mean(entry['alignment']):.3f}"
                if entry.get("alignment_unperturbed"):
                    line += f" (unperturbed {np.mean(entry['alignment_unperturbed']):.3f})"
        lines.append(line)
    return lines


def poison_probes(poisoned: PoisonedDataset) -> list[dict[str, np.ndarray]] | None:
    """Per target, its poisons' images (``x``), labels (``y``) and, when kept, unperturbed images
    (``x_original``), from the attack record's ``poison_indices``; ``None`` when the record has none or
    they no longer match the training split (after a filter removed samples)."""
    record = targeted_record(poisoned)
    groups = record.poison_indices if record is not None else ()
    if not groups:
        return None
    flat = np.sort(np.concatenate([np.asarray(g, dtype=np.int64) for g in groups]))
    if not np.array_equal(flat, np.flatnonzero(poisoned.is_poison)):  # indices of another (unfiltered) split
        return None
    # row of each training index among the poisons, for original_pixels (stored in training-set order)
    row = np.cumsum(poisoned.is_poison) - 1
    probes = []
    for group in groups:
        idx = np.asarray(group, dtype=np.int64)
        probe = {"x": poisoned.x_train[idx], "y": poisoned.y_train[idx]}
        if poisoned.original_pixels is not None:
            probe["x_original"] = poisoned.original_pixels[row[idx]]
        probes.append(probe)
    return probes


def _retrain_and_score(x_train: np.ndarray, y_train: np.ndarray, ds: PoisonedDataset, targets: np.ndarray,
                       adv_classes: np.ndarray, *, runs: int, config: TrainConfig, progress: bool,
                       desc: str, probes: list[dict[str, np.ndarray]] | None = None,
                       triggered: tuple[np.ndarray, np.ndarray, int] | None = None) -> dict[str, Any]:
    others = np.ones(len(ds.y_test), dtype=bool)
    others[targets] = False
    seeds = [config.seed + r for r in range(runs)]
    per_run, predictions, adv_probs = [], [], []
    alignment: dict[str, list[list[float]]] = {"alignment": [], "alignment_unperturbed": []}
    for seed in seeds:
        run_config = TrainConfig(**{**config.to_dict(), "seed": seed})
        trained = train(x_train, y_train, num_classes=ds.num_classes, config=run_config, progress=progress,
                        desc=f"{desc} seed {seed}")
        logits = predict_logits(trained.model, ds.x_test, tta=run_config.resolved_tta(ds.channels))
        pred = logits.argmax(axis=1)
        accuracy = metrics_from_predictions(ds.y_test[others], pred[others], num_classes=ds.num_classes)["accuracy"]
        hits = pred[targets] == adv_classes
        predictions.append(pred[targets])
        adv_probs.append(_softmax(logits[targets])[np.arange(len(targets)), adv_classes])
        if probes is not None:
            for key, images in (("alignment", "x"), ("alignment_unperturbed", "x_original")):
                if images in probes[0]:
                    alignment[key].append([
                        round(gradient_alignment(trained.model, probe[images], probe["y"],
                                                 ds.x_test[t:t + 1], int(y_adv)), 4)
                        for probe, t, y_adv in zip(probes, targets, adv_classes)])
        per_run.append({"seed": seed, "clean_accuracy": accuracy, "seconds": round(trained.seconds, 3),
                        "success_rate": float(hits.mean()) if len(targets) else None,
                        "successes": int(hits.sum())})
        if triggered is not None:
            x_trig, y_trig, target = triggered
            pred_trig = predict_logits(trained.model, x_trig, tta=run_config.resolved_tta(ds.channels)).argmax(axis=1)
            scores = backdoor_metrics(pred_trig, y_trig, target)
            per_run[-1].update(attack_success_rate=scores["attack_success_rate"],
                               robust_accuracy=scores["robust_accuracy"])
    success_rate, success_std = mean_std([r["success_rate"] for r in per_run])
    accuracy, accuracy_std = mean_std([r["clean_accuracy"] for r in per_run])
    per_target = []
    for k, (index, y_adv) in enumerate(zip(targets, adv_classes)):
        preds = [int(p[k]) for p in predictions]
        per_target.append({
            "index": int(index), "true_label": int(ds.y_test[index]), "adversarial_class": int(y_adv),
            "predicted": preds, "success": [p == int(y_adv) for p in preds],
            "success_rate": float(np.mean([p == int(y_adv) for p in preds])),
            "adversarial_probability": [round(float(p[k]), 6) for p in adv_probs],
            **{key: [run[k] for run in values] for key, values in alignment.items() if values},
        })
    backdoor: dict[str, Any] = {}
    if triggered is not None:
        for key in ("attack_success_rate", "robust_accuracy"):
            backdoor[key], backdoor[f"{key}_std"] = mean_std([r[key] for r in per_run])
        backdoor.update(n_triggered=int(len(triggered[1])), target_class=int(triggered[2]))
    return {
        **backdoor,
        "runs": runs, "seeds": seeds, "config": config.to_dict(),
        "success_rate": success_rate if len(targets) else None,
        "success_rate_std": success_std if len(targets) else None,
        "clean_accuracy": accuracy, "clean_accuracy_std": accuracy_std,
        "targets": per_target, "per_run": per_run,
    }


def _seed_overlap(poisoned: PoisonedDataset, seeds: list[int]) -> list[int]:
    """Validation seeds equal to a surrogate's: such a run is not an independent victim."""
    record = targeted_record(poisoned)
    surrogate = {s for s in (record.surrogate_seeds if record is not None else ()) if isinstance(s, int)}
    return sorted(surrogate.intersection(seeds))


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) logits."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
