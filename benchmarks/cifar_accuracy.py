"""Accuracy against training time on CIFAR-10: a model's recipe at several epoch budgets, one run.

Each budget is a fresh training with poisonlab's ``train`` (the model's recipe in ``poisonlab.models.RECIPES``:
its optimizer, schedule and augmentation; channels-last, bf16 where the CPU has it); the table gives training
seconds (evaluation not included), images per second, and test accuracy without and with test-time
augmentation (flip; flip and one-pixel shifts). The reference in the same run is the recipe poisonlab had
before (Adam, one-cycle, batch 256, peak lr 0.004, no smoothing, crop-flip, no TTA) at the largest budget, so
the gain is measured on the same machine and load.

    python benchmarks/cifar_accuracy.py --dataset /path/to/cifar10-jpeg [--epochs 4 8 12] [--model fastnet]
    python benchmarks/cifar_accuracy.py --dataset cifar10 --data-dir DIR      # the official archive
    python benchmarks/cifar_accuracy.py --dataset DIR --quick                 # 5,000 images, 2 epochs

Time a budget with nothing else running: two cores shared with another job make every figure slower.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from poisonlab.data import load_dataset
from poisonlab.models import MODEL_NAMES, RECIPES
from poisonlab.training import TrainConfig, evaluate, machine_info, train

# what fastnet trained with before the recipe (the README's first CIFAR number)
PREVIOUS = {"optimizer": "adam", "batch_size": 256, "lr": 0.004, "weight_decay": 0.0, "label_smoothing": 0.0,
            "tta": "none", "schedule": "one-cycle", "augment": "crop-flip"}


def run_budget(ds, model: str, epochs: int, recipe: dict, seed: int, device: str = "auto") -> dict:
    config = TrainConfig(**{**recipe, "epochs": epochs, "model": model, "seed": seed, "device": device})
    result = train(ds.x_train, ds.y_train, num_classes=ds.num_classes, config=config, progress=True,
                   desc=f"{model} {epochs} epochs")
    precision = config.resolved_precision()
    start = time.perf_counter()
    plain = evaluate(result.model, ds.x_test, ds.y_test, num_classes=ds.num_classes, precision=precision)
    flip = evaluate(result.model, ds.x_test, ds.y_test, num_classes=ds.num_classes, precision=precision, tta="flip")
    six = evaluate(result.model, ds.x_test, ds.y_test, num_classes=ds.num_classes, precision=precision,
                   tta="flip-shift")
    return {"model": model, "epochs": epochs, "device": config.resolved_device(), "recipe": {k: v for k, v in config.to_dict().items() if k in recipe},
            "train_seconds": round(result.seconds, 1), "images_per_second": round(result.images_per_second, 1),
            "accuracy": plain["accuracy"], "accuracy_flip_tta": flip["accuracy"],
            "accuracy_flip_shift_tta": six["accuracy"],
            "eval_seconds": round(time.perf_counter() - start, 1),
            "per_class_accuracy_flip_tta": dict(zip(ds.classes, flip["per_class_accuracy"]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="cifar10", help="cifar10, an image folder or an .npz")
    ap.add_argument("--data-dir", default=None, help="the official archive or its folder (cifar10)")
    ap.add_argument("--model", default="fastnet", choices=MODEL_NAMES)
    ap.add_argument("--epochs", type=int, nargs="+", default=None, help="budgets (default: the recipe's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--no-reference", action="store_true", help="skip the previous recipe's run")
    ap.add_argument("--quick", action="store_true", help="5,000 training images, 2 epochs: a smoke test")
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = ap.parse_args()

    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    recipe = dict(RECIPES[args.model])
    budgets = args.epochs or [recipe.pop("epochs")]
    recipe.pop("epochs", None)
    if args.quick:
        ds, budgets = ds.subset(5000, 2000, seed=0), [2]
    print(f"{args.model} on {ds.name}: {len(ds.y_train)} train / {len(ds.y_test)} test, "
          f"{torch.get_num_threads()} threads, {machine_info()['precision']}; recipe {json.dumps(recipe)}")
    rows = [run_budget(ds, args.model, e, recipe, args.seed, args.device) for e in budgets]
    if not args.no_reference:
        rows.append({**run_budget(ds, args.model, max(budgets), {**recipe, **PREVIOUS}, args.seed, args.device),
                     "reference": "previous recipe"})
    print(f"\n{'epochs':>6} {'recipe':<16} {'train s':>8} {'img/s':>7} {'acc %':>6} {'+flip TTA %':>11} "
          f"{'+flip-shift TTA %':>17}")
    for r in rows:
        name = r.get("reference", "recipe")
        print(f"{r['epochs']:>6} {name:<16} {r['train_seconds']:>8.1f} {r['images_per_second']:>7.0f} "
              f"{100 * r['accuracy']:>6.2f} {100 * r['accuracy_flip_tta']:>11.2f} "
              f"{100 * r['accuracy_flip_shift_tta']:>17.2f}")
    if not args.no_reference and len(rows) > 1:
        best, ref = rows[-2], rows[-1]
        print(f"\nat {best['epochs']} epochs the recipe gains {100 * (best['accuracy_flip_tta'] - ref['accuracy']):+.2f} "
              f"points over the previous one (its TTA accuracy vs the reference's plain accuracy)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"machine": machine_info(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
