"""Witches' Brew gradient matching end to end: brew, retrain, validate, then each defense's effect.

Reads top to bottom like the reference experiment: train a surrogate and brew poisons (crafting time
per target), retrain fresh victims on the poisoned set (attack success rate, clean accuracy), and for
every defense: fit it, count poisons removed and clean samples lost, retrain on what it keeps and
measure the success rate again. The reference for every defense is the undefended success rate
measured in the same run.

    python benchmarks/gradient_matching.py --quick                     # digits, tiny: about a minute
    python benchmarks/gradient_matching.py                             # MNIST, 1%, eps 16/255, 5 targets
                                                                       # (8 restarts x 250 steps, 3 runs per
                                                                       # defense: hours on a 2-core CPU)
    python benchmarks/gradient_matching.py --poisoned P.npz --runs 3   # reuse brewed poisons
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from poisonlab._io import write_json
from poisonlab.attacks import TargetedRecord, make_attack
from poisonlab.data import load_dataset, load_poisoned
from poisonlab.defenses import FEATURE_KINDS, compute_features, make_detector, run_defense
from poisonlab.errors import PoisonlabError
from poisonlab.parallel import keep_freed_memory
from poisonlab.training import TrainConfig
from poisonlab.validation import describe_targets, validate_poisoned

DEFENSES = ("activation-clustering", "spectral", "deep-knn", "pca", "kmeans", "pca+kmeans")
FULL = dict(dataset="mnist", subset=None, budget=0.01, eps=16, targets=5, restarts=8, steps=250, runs=3, epochs=3)
QUICK = dict(dataset="digits", subset=(600, 200), budget=0.05, eps=16, targets=2, restarts=1, steps=20, runs=2,
             epochs=4)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    keep_freed_memory()  # less CPU time for crafting (no page faults on every step)
    settings = {**(QUICK if args.quick else FULL), **{k: v for k, v in vars(args).items()
                                                      if k in FULL and v is not None}}
    config = TrainConfig(epochs=settings["epochs"], seed=args.seed,
                         batch_size=32 if args.quick else TrainConfig.batch_size)
    report: dict = {"settings": {**settings, "seed": args.seed, "features": args.features, "quick": args.quick,
                                 "ensemble": args.ensemble, "augment": not args.no_augment,
                                 "target_selection": args.target_selection}}

    # 1. brew (or reuse) the poisons
    if args.poisoned:
        poisoned = load_poisoned(args.poisoned)
        report["settings"]["poisoned"] = str(args.poisoned)
    else:
        ds = load_dataset(settings["dataset"])
        if settings["subset"]:
            ds = ds.subset(*settings["subset"], seed=args.seed)
        attack = make_attack("gradient-matching", budget=settings["budget"], eps=settings["eps"] / 255,
                             targets=settings["targets"], restarts=settings["restarts"], steps=settings["steps"],
                             ensemble=args.ensemble, surrogate_epochs=settings["epochs"],
                             augment=not args.no_augment, target_selection=args.target_selection)
        start = time.perf_counter()
        poisoned = attack.poison(ds, seed=args.seed)
        report["attack_seconds_total"] = round(time.perf_counter() - start, 3)
        if args.save_poisoned:
            poisoned.save(args.save_poisoned)
    targeted = TargetedRecord.from_attack(poisoned.attack, required=True)
    assert targeted is not None
    report["crafting_seconds_per_target"] = poisoned.attack["crafting_seconds"]
    report["alignment_loss"] = list(targeted.alignment_loss)
    _say(f"crafted {poisoned.n_poison} poisons for {len(targeted.targets)} targets; seconds per target "
         f"{_fmt(report['crafting_seconds_per_target'])}; alignment loss {_fmt(report['alignment_loss'])}")

    # 2. retrain fresh victims on the poisoned set: the undefended reference
    undefended = validate_poisoned(poisoned, runs=settings["runs"], config=config, clean_control=args.clean_control)
    report["undefended"] = undefended
    _say(f"undefended: success {_pct(undefended['success_rate'])} ± {_pct(undefended['success_rate_std'])}, "
         f"clean accuracy {_pct(undefended['clean_accuracy'])}"
         + (f"; without poisons {_pct(undefended['control']['success_rate'])}" if args.clean_control else ""))
    for line in describe_targets(undefended):
        _say(line)

    # 3. each defense: filter, retrain, validate again
    report["defenses"] = {}
    defenses = [] if args.no_defenses else _available(args.defenses)
    features = (compute_features(args.features, poisoned.x_train, poisoned.y_train, num_classes=poisoned.num_classes,
                                 seed=args.seed, train_config=config) if defenses else None)
    for name in defenses:
        detection = run_defense(poisoned, name, features=features[0], feature_info=features[1], seed=args.seed)
        filtered = poisoned.keep(detection.kept)
        after = validate_poisoned(filtered, runs=settings["runs"], config=config)
        m = detection.metrics
        report["defenses"][name] = {
            "poisons_removed": m["poisons_removed"], "n_poison": m["n_poison"], "clean_removed": m["clean_removed"],
            "f1": m["f1"], "roc_auc": m["roc_auc"], "seconds_detect": m["seconds_detect"],
            "success_rate": after["success_rate"], "success_rate_std": after["success_rate_std"],
            "clean_accuracy": after["clean_accuracy"], "clean_accuracy_std": after["clean_accuracy_std"],
            "success_ratio_to_undefended": _ratio(after["success_rate"], undefended["success_rate"]),
        }
    _print_table(report)
    if args.out:
        write_json(args.out, report)
        _say(f"wrote {args.out}")
    return 0


def _available(names: list[str]) -> list[str]:
    """The requested defenses that are registered (others are being written; skip them with a note)."""
    available = []
    for name in names:
        try:
            make_detector(name)
            available.append(name)
        except PoisonlabError as exc:
            _say(f"skipping defense {name}: {exc}")
    return available


def _print_table(report: dict) -> None:
    base = report["undefended"]
    print(f"{'defense':<22} {'poisons removed':>15} {'clean lost':>10} {'success':>16} {'vs none':>8} "
          f"{'clean acc':>9}")
    print(f"{'none':<22} {'-':>15} {'-':>10} {_pct(base['success_rate']) + ' ± ' + _pct(base['success_rate_std']):>16} "
          f"{'1.00':>8} {_pct(base['clean_accuracy']):>9}")
    for name, d in report["defenses"].items():
        ratio = "n/a" if d["success_ratio_to_undefended"] is None else f"{d['success_ratio_to_undefended']:.2f}"
        print(f"{name:<22} {str(d['poisons_removed']) + '/' + str(d['n_poison']):>15} {d['clean_removed']:>10} "
              f"{_pct(d['success_rate']) + ' ± ' + _pct(d['success_rate_std']):>16} {ratio:>8} "
              f"{_pct(d['clean_accuracy']):>9}")
    secs = report["crafting_seconds_per_target"]
    print(f"crafting seconds per target: mean {np.mean(secs):.1f}, each {_fmt(secs)}")


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 4)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _fmt(values: list[float]) -> str:
    return json.dumps([round(v, 3) for v in values])


def _say(message: str) -> None:
    print(f"[gradient_matching] {message}", file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="digits subset, few steps: a smoke test of the pipeline")
    p.add_argument("--poisoned", type=Path, help="reuse a poisoned .npz from 'poisonlab attack gradient-matching'")
    p.add_argument("--save-poisoned", type=Path, help="write the brewed poisoned .npz here")
    for key in ("budget", "restarts", "steps", "targets", "runs", "epochs"):
        p.add_argument(f"--{key}", type=float if key == "budget" else int,
                       help=f"override (full {FULL[key]}, quick {QUICK[key]})")
    p.add_argument("--eps", type=float, help="L-inf bound in pixel units /255 (default 16)")
    p.add_argument("--ensemble", type=int, default=1, help="surrogate models (default 1)")
    p.add_argument("--no-augment", action="store_true", help="craft without random translations")
    p.add_argument("--target-selection", choices=("random", "low-margin"), default="random",
                   help="random targets (the reference protocol, default) or the surrogate's low-margin test "
                        "images with their runner-up class (pair with --clean-control)")
    p.add_argument("--features", choices=FEATURE_KINDS, default="activations",
                   help="feature space of every defense (default activations of a model trained on the poisoned set)")
    p.add_argument("--defenses", nargs="+", default=list(DEFENSES), help=f"default: {' '.join(DEFENSES)}")
    p.add_argument("--no-defenses", action="store_true", help="attack and validation only")
    p.add_argument("--clean-control", action="store_true", help="also retrain without the poisons (base rate)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the results as JSON")
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
