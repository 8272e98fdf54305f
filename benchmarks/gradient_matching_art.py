"""Witches' Brew side by side with ART's ``GradientMatchingAttack``: the same targets, the same base images,
the same surrogate, the same victims.

Reads top to bottom: take a poisoned file from ``poisonlab attack gradient-matching`` (its targets,
adversarial classes and poison indices) and the surrogate it was brewed on; for every target let ART
1.20's ``GradientMatchingAttack`` craft poisons from exactly our base images (``percent_poison=1`` on
them, one trial, ``--steps`` full-batch epochs, ART's learning-rate schedule scaled to that many, the same
eps) on the same surrogate; score both sets with one measure (the surrogate's gradient alignment of the
uint8 poisons, as ``poisonlab validate`` probes it) and time both crafting loops; then, with ``--runs``,
retrain victims from scratch on each poisoned set with the same seeds and recipe and compare the success
rates (``--clean-control``: the base rate without poisons).

What differs is ART's design, not a setting: ART crafts without augmentation and through a tanh
parametrisation with Adam on raw gradients (ours: signed Adam on a clamped perturbation, random
crops/flips); both see the surrogate in eval mode. ART is imported only here, in the benchmark's own
environment (``python -m venv /work/benchenv --system-site-packages && /work/benchenv/bin/pip install
adversarial-robustness-toolbox``).

    python benchmarks/gradient_matching_art.py --quick     # digits: our brew, then ART on the same targets
    python benchmarks/gradient_matching_art.py --poisoned gm.npz --surrogate surr/model.safetensors \\
        --steps 120 --runs 1 --clean-control --model airnet --epochs 8 --out gm_art.json
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from poisonlab._io import write_json
from poisonlab.attacks import TargetedRecord, make_attack
from poisonlab.attacks.gradient_matching import gradient_alignment, to_uint8, unit_pixels
from poisonlab.cli.common import load_surrogate
from poisonlab.data import PoisonedDataset, load_dataset, load_poisoned
from poisonlab.models import RECIPES
from poisonlab.parallel import keep_freed_memory
from poisonlab.training import TrainConfig, train
from poisonlab.validation import validate_poisoned

os.environ.setdefault("TQDM_DISABLE", "1")  # ART's progress bars
try:
    import art
    from art.attacks.poisoning import GradientMatchingAttack
    from art.estimators.classification import PyTorchClassifier
except ImportError:
    art = None

ART_SCHEDULE = ([1e-1, 1e-2, 1e-3, 1e-4], [100, 150, 200, 220])  # ART's default, for its default 250 epochs


class _Trainable(nn.Module):
    """The surrogate as ART sees it: only the parameters our crafting differentiates (ART takes them all)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def parameters(self, recurse: bool = True):
        return (p for p in self.model.parameters(recurse) if p.requires_grad)


def art_brew(surrogate: nn.Module, x_poison: np.ndarray, y_poison: np.ndarray, x_target: np.ndarray, y_adv: int,
             *, eps: float, steps: int, seed: int) -> np.ndarray:
    """ART's poisons (P, C, H, W) uint8 for one target, crafted from exactly ``x_poison`` (uint8 images)."""
    model = _Trainable(copy.deepcopy(surrogate).float().eval())
    classifier = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=x_poison.shape[1:],
                                   nb_classes=int(model(unit_pixels(x_target)).shape[1]), clip_values=(0.0, 1.0))
    rates, milestones = ART_SCHEDULE
    schedule = (rates, [max(1, round(m * steps / 250)) for m in milestones])
    attack = GradientMatchingAttack(classifier, percent_poison=1.0, epsilon=eps, max_trials=1, max_epochs=steps,
                                    learning_rate_schedule=schedule, batch_size=len(x_poison), clip_values=(0.0, 1.0),
                                    verbose=0)
    np.random.seed(seed)  # ART draws its poison order and its noise from the global generators
    torch.manual_seed(seed)
    x_out, _ = attack.poison(unit_pixels(x_target).numpy(), np.array([y_adv]), unit_pixels(x_poison).numpy(),
                             np.asarray(y_poison, dtype=np.int64))
    return to_uint8(torch.from_numpy(np.asarray(x_out, dtype=np.float32)))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if art is None:
        print("gradient_matching_art: ART is not installed in this environment (see the docstring)", file=sys.stderr)
        return 2
    keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    ours, surrogate, config = _ours(args)
    record = TargetedRecord.from_attack(ours.attack, required=True)
    assert record is not None
    eps = float(ours.attack["params"]["eps"])
    steps = args.steps or int(ours.attack["params"]["steps"])
    x_clean = ours.x_train.copy()
    x_clean[ours.is_poison] = ours.original_pixels
    if args.targets and args.targets < len(record.targets):
        ours, record = _first_targets(ours, record, x_clean, args.targets)
    x_art = x_clean.copy()
    rows = []
    chosen = list(zip(record.targets, record.adversarial_classes, record.poison_indices))
    for k, (target, y_adv, idx) in enumerate(chosen):
        idx = np.asarray(idx)
        x_target, y_poison = ours.x_test[target:target + 1], ours.y_train[idx]
        start = time.perf_counter()
        x_art[idx] = art_brew(surrogate, x_clean[idx], y_poison, x_target, int(y_adv), eps=eps, steps=steps,
                              seed=args.seed + k)
        seconds = time.perf_counter() - start
        row = {"target": int(target), "adversarial_class": int(y_adv), "n_poison": len(idx),
               "alignment_unperturbed": _align(surrogate, x_clean[idx], y_poison, x_target, y_adv),
               "alignment_ours": _align(surrogate, ours.x_train[idx], y_poison, x_target, y_adv),
               "alignment_art": _align(surrogate, x_art[idx], y_poison, x_target, y_adv),
               "seconds_ours": float(ours.attack["crafting_seconds"][k]), "seconds_art": round(seconds, 3),
               "max_change_art": int(np.abs(x_art[idx].astype(np.int16) - x_clean[idx]).max())}
        rows.append(row)
        _say(f"target {k + 1}/{len(record.targets)} (test #{target} -> {y_adv}): alignment ours "
             f"{row['alignment_ours']:.3f}, ART {row['alignment_art']:.3f} (unperturbed "
             f"{row['alignment_unperturbed']:.3f}); seconds ours {row['seconds_ours']:.1f}, ART {seconds:.1f}")
    theirs = PoisonedDataset(
        name=ours.name, x_train=x_art, y_train=ours.y_train, x_test=ours.x_test, y_test=ours.y_test, classes=ours.classes,
        is_poison=ours.is_poison.copy(), original_labels=ours.original_labels.copy(),
        original_pixels=ours.original_pixels.copy(),
        attack={**ours.attack, "crafted_by": f"art {art.__version__}", "art_steps": steps,
                "alignment_loss": [round(1 - r["alignment_art"], 6) for r in rows],
                "crafting_seconds": [r["seconds_art"] for r in rows]})
    if args.save_art:
        theirs.save(args.save_art)
    report = {"settings": {"poisoned": str(args.poisoned or "quick"), "eps": eps, "steps_ours": ours.attack["params"]
                           ["steps"], "steps_art": steps, "seed": args.seed, "art": art.__version__,
                           "threads": torch.get_num_threads()}, "targets": rows}
    if args.runs:
        report["config"] = {"model": config.model, "epochs": config.epochs, "seed": config.seed}
        for name, poisoned in (("ours", ours), ("art", theirs)):
            result = validate_poisoned(poisoned, runs=args.runs, config=config,
                                       clean_control=args.clean_control and name == "ours")
            report[f"validation_{name}"] = {key: result.get(key) for key in (
                "success_rate", "success_rate_std", "clean_accuracy", "clean_accuracy_std")}
            report[f"validation_{name}"]["successes"] = [t["success"] for t in result["targets"]]
            if "control" in result:
                report["control"] = {key: result["control"].get(key) for key in ("success_rate", "clean_accuracy")}
    _print(report)
    if args.out:
        write_json(args.out, report)
        _say(f"wrote {args.out}")
    return 0


def _ours(args: argparse.Namespace) -> tuple[PoisonedDataset, nn.Module, TrainConfig]:
    """Our poisoned set, its surrogate and the victims' recipe (``--quick``: brewed here on a digits slice)."""
    if args.quick:
        ds = load_dataset("digits").subset(600, 200, seed=args.seed)
        config = TrainConfig(epochs=4, batch_size=32, seed=args.seed)
        surrogate = train(ds.x_train, ds.y_train, num_classes=ds.num_classes, config=config, progress=False).model
        attack = make_attack("gradient-matching", budget=0.05, eps=16 / 255, targets=2, steps=args.steps or 20)
        return attack.poison(ds, seed=args.seed, model=surrogate), surrogate, config
    if not (args.poisoned and args.surrogate):
        raise SystemExit("gradient_matching_art: give --poisoned and --surrogate, or --quick")
    ours = load_poisoned(args.poisoned)
    config = TrainConfig.from_recipe(args.model, in_channels=ours.channels, epochs=args.epochs, seed=args.seed)
    return ours, load_surrogate(args.surrogate, ours), config


def _first_targets(ours: PoisonedDataset, record: TargetedRecord, x_clean: np.ndarray,
                   k: int) -> tuple[PoisonedDataset, TargetedRecord]:
    """``ours`` with only its first ``k`` targets' poisons (the others' images restored), so both attacks are
    validated on the same targets."""
    n_targets = len(record.targets)
    keep = np.zeros(len(x_clean), dtype=bool)
    keep[[i for idx in record.poison_indices[:k] for i in idx]] = True
    x = x_clean.copy()
    x[keep] = ours.x_train[keep]
    attack = {key: value[:k] if isinstance(value, list) and len(value) == n_targets else value
              for key, value in ours.attack.items()}
    fewer = PoisonedDataset(name=ours.name, x_train=x, y_train=ours.y_train, x_test=ours.x_test, y_test=ours.y_test,
                            classes=ours.classes, is_poison=keep, original_labels=ours.original_labels.copy(),
                            original_pixels=x_clean[keep], attack=attack)
    fewer_record = TargetedRecord.from_attack(attack, required=True)
    assert fewer_record is not None
    return fewer, fewer_record


def _align(model: nn.Module, x: np.ndarray, y: np.ndarray, x_target: np.ndarray, y_adv: int) -> float:
    return round(gradient_alignment(model, x, y, x_target, int(y_adv)), 4)


def _print(report: dict) -> None:
    rows = report["targets"]
    print(f"{'target':>8} {'adv':>4} {'unperturbed':>11} {'ours':>6} {'ART':>6} {'s ours':>7} {'s ART':>7}")
    for r in rows:
        print(f"{r['target']:>8} {r['adversarial_class']:>4} {r['alignment_unperturbed']:>11.3f} "
              f"{r['alignment_ours']:>6.3f} {r['alignment_art']:>6.3f} {r['seconds_ours']:>7.1f} {r['seconds_art']:>7.1f}")
    mean = {key: float(np.mean([r[key] for r in rows])) for key in ("alignment_ours", "alignment_art",
                                                                   "seconds_ours", "seconds_art")}
    print(f"mean alignment ours {mean['alignment_ours']:.3f}, ART {mean['alignment_art']:.3f}; crafting seconds "
          f"ours {mean['seconds_ours']:.1f}, ART {mean['seconds_art']:.1f} (ratio ART/ours "
          f"{mean['seconds_art'] / max(mean['seconds_ours'], 1e-9):.2f}; ours at {report['settings']['steps_ours']} "
          f"steps, ART at {report['settings']['steps_art']})")
    for name in ("ours", "art"):
        v = report.get(f"validation_{name}")
        if v:
            wins = sum(sum(map(bool, runs)) for runs in v["successes"])
            total = sum(len(runs) for runs in v["successes"])
            print(f"success {name}: {v['success_rate']:.3f} ({wins} of {total} target x victim pairs), "
                  f"clean accuracy {v['clean_accuracy']:.4f}")
    if "control" in report:
        print(f"without poisons: success {report['control']['success_rate']:.3f}")


def _say(message: str) -> None:
    print(f"[gradient_matching_art] {message}", file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="brew on a digits slice first: a smoke test")
    p.add_argument("--poisoned", type=Path, help="a poisoned .npz from 'poisonlab attack gradient-matching'")
    p.add_argument("--surrogate", type=Path, help="the model.safetensors it was brewed on")
    p.add_argument("--steps", type=int, help="ART's epochs (default: the steps our brew took)")
    p.add_argument("--targets", type=int, help="only the first N targets of the file (both attacks)")
    p.add_argument("--runs", type=int, default=0, help="victims retrained on each poisoned set (default 0: none)")
    p.add_argument("--clean-control", action="store_true", help="also victims without the poisons (base rate)")
    p.add_argument("--model", default="paper-cnn", choices=sorted(RECIPES), help="victim model (default paper-cnn)")
    p.add_argument("--epochs", type=int, help="victim epochs (default: the model's recipe)")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-art", type=Path, help="write ART's poisoned set here (for 'poisonlab validate')")
    p.add_argument("--out", type=Path, help="write the results as JSON")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
