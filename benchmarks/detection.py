"""Detection benchmark: every filtering defense x every feature space, on MNIST under two attacks.

Attacks: a 10% uniform label flip and 10% FGSM poisons (the paper's two attack families). Each feature
space is computed once per attack (``compute_features``) and given to every detector's ``run_defense``, so
``seconds_detect`` is the detector alone. Rows print F1, precision, recall, removed, poisons removed and
seconds; the last column is the detection time relative to the paper's K-means defense on the same
features, measured in the same run.

    python benchmarks/detection.py [--quick] [--seed 0] [--epochs 3] [--defenses pca kmeans ...]
                                   [--features activations pixels pca] [--attacks label-flip fgsm]
                                   [--out results.json]

``--quick`` uses a class-stratified slice of 6,000 training and 1,000 test images and 1-epoch models.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

from poisonlab._io import write_json
from poisonlab.attacks import make_attack
from poisonlab.data import load_dataset
from poisonlab.defenses import DETECTORS, FEATURE_KINDS, compute_features, run_defense
from poisonlab.errors import PoisonlabError
from poisonlab.training import TrainConfig

ATTACKS = {"label-flip": {"rate": 0.1}, "fgsm": {"rate": 0.1}}
REFERENCE_DEFENSE = "kmeans"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="6,000/1,000-image MNIST slice, 1-epoch models")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, help="epochs of the activation model (default 3, --quick 1)")
    ap.add_argument("--defenses", nargs="+", default=sorted(DETECTORS), choices=sorted(DETECTORS), metavar="NAME")
    ap.add_argument("--features", nargs="+", default=list(FEATURE_KINDS), choices=FEATURE_KINDS)
    ap.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=list(ATTACKS))
    ap.add_argument("--out", help="also write all rows to this JSON file")
    args = ap.parse_args()

    os.environ.setdefault("POISONLAB_CACHE", "/tmp/plcache")
    ds = load_dataset(args.dataset)
    if args.quick:
        ds = ds.subset(6000, 1000, seed=args.seed)
    epochs = args.epochs or (1 if args.quick else 3)
    config = TrainConfig(epochs=epochs, seed=args.seed)
    print(f"# {ds.name}: {len(ds.y_train)} training images, activation model {epochs} epoch(s), seed {args.seed}")
    rows = []
    for attack_name in args.attacks:
        start = time.perf_counter()
        poisoned = make_attack(attack_name, **ATTACKS[attack_name]).poison(ds, seed=args.seed)
        print(f"\n## {attack_name} {ATTACKS[attack_name]}: {poisoned.n_poison} poisons "
              f"(crafted in {time.perf_counter() - start:.1f} s)")
        print(f"{'features':<12}{'defense':<22}{'F1':>7}{'prec':>7}{'recall':>7}{'removed':>9}{'poisons':>9}"
              f"{'s feat':>8}{'s detect':>10}{'x ' + REFERENCE_DEFENSE:>10}")
        for features in args.features:
            X, info = compute_features(features, poisoned.x_train, poisoned.y_train, num_classes=poisoned.num_classes,
                                       seed=args.seed, train_config=config)
            feature_rows = []
            for defense in args.defenses:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        result = run_defense(poisoned, defense, features=X, feature_info=info, seed=args.seed)
                except PoisonlabError as exc:
                    print(f"{features:<12}{defense:<22}failed: {exc}")
                    continue
                m = result.metrics
                feature_rows.append(dict(attack=attack_name, **{k: v for k, v in m.items() if k != "feature_info"}))
            reference = next((r["seconds_detect"] for r in feature_rows if r["defense"] == REFERENCE_DEFENSE), None)
            for r in feature_rows:
                ratio = f"{r['seconds_detect'] / reference:.2f}" if reference else "-"
                print(f"{features:<12}{r['defense']:<22}{_f(r['f1']):>7}{_f(r['precision']):>7}{_f(r['recall']):>7}"
                      f"{r['removed']:>9}{r['poisons_removed']:>9}{r['seconds_features']:>8.1f}"
                      f"{r['seconds_detect']:>10.3f}{ratio:>10}")
                sys.stdout.flush()
            rows.extend(feature_rows)
    if args.out:
        write_json(args.out, {"dataset": ds.name, "n_train": int(len(ds.y_train)), "epochs": epochs,
                              "seed": args.seed, "rows": rows})


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
