"""The CUDA measurements in one run, sized to a fixed budget of seconds: what a short lease on a GPU is for.

Reads top to bottom:

1. **Throughput**: each model's training step, poisonlab's ``train`` against a plain PyTorch loop for the
   same model in the same run (``benchmarks/train_throughput.py``'s two loops, data on the GPU).
2. **Witches' Brew on ResNet-18** (the literature's setting, Geiping et al. 2021): a ResNet-18 surrogate
   trained from scratch with crop/flip, ``--targets`` random correctly classified test images each with a
   random wrong class, 1% poisons per target (500 on CIFAR-10), eps 16/255, 240 signed-Adam steps with
   crop/flip during crafting, ``R`` restarts; then a victim ResNet-18 trained from scratch on the poisoned
   set (all targets' poisons in one set, disjoint) and a clean-control victim without the poisons, same
   seed and recipe. The epochs ``E`` and restarts ``R`` are the largest that fit the seconds left (the
   largest epochs first, up to the recipe's 40), from the measured images/s and a timed crafting probe;
   both are printed and recorded.
3. **Fast net accuracy** (airnet-wide, its recipe and TTA), if time is left.

Every stage writes its rows to ``--out``/suite.json as soon as it ends, so a run stopped at its limit keeps
what it finished. Timings are wall-clock on whatever GPU runs it (recorded), after warm-ups.

    python benchmarks/gpu_suite.py --dataset /path/to/cifar10-jpeg --out results/ --budget-s 540
    python benchmarks/gpu_suite.py --dataset DIR --out /tmp/suite --quick --device cpu   # a smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import ours, plain_loop  # noqa: E402  (the throughput benchmark's two loops)

from poisonlab.attacks import TargetedRecord, make_attack  # noqa: E402
from poisonlab.attacks.gradient_matching import brew_poisons  # noqa: E402
from poisonlab.data import load_dataset  # noqa: E402
from poisonlab.models import RECIPES, build_model  # noqa: E402
from poisonlab.training import TrainConfig, evaluate, machine_info, train  # noqa: E402
from poisonlab.validation import validate_poisoned  # noqa: E402

STEPS = 240  # the reference's crafting steps


class Suite:
    """The run's clock and its record (written after every stage)."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.out, self.budget_s, self.start = out, budget_s, time.perf_counter()
        self.record: dict = {"budget_s": budget_s, "torch": torch.__version__, "machine": machine_info()}
        if torch.cuda.is_available():
            self.record["gpu"] = torch.cuda.get_device_name()
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)

    def save(self, key: str, value) -> None:
        self.record[key] = value
        self.record["elapsed_s"] = round(time.perf_counter() - self.start, 1)
        (self.out / "suite.json").write_text(json.dumps(self.record, indent=1))
        say(f"{key}: {json.dumps(value)[:600]}")


def throughput(suite: Suite, ds, device: str, models: list[str], images: int) -> dict:
    x, y = ds.x_train[:images], ds.y_train[:images]
    rows = {}
    for m in models:
        plain_loop(x[:1280], y[:1280], model_name=m, device=device)  # warm-ups
        ours(x[:1280], y[:1280], model_name=m, device=device)
        plain = [plain_loop(x, y, model_name=m, device=device) for _ in range(2)]
        mine = [ours(x, y, model_name=m, device=device) for _ in range(2)]
        rows[m] = {"plain_images_per_s": round(max(plain)), "poisonlab_images_per_s": round(max(mine)),
                   "ratio": round(max(mine) / max(plain), 2), "images": len(x), "batch": 128}
        suite.save("throughput", rows)
    return rows


def witches_brew(suite: Suite, ds, device: str, targets: int, images_per_s: float, reserve_s: float,
                 max_epochs: int, seed: int, steps: int = STEPS, plan_epochs: int | None = None,
                 plan_restarts: int | None = None) -> None:
    n = len(ds.y_train)
    # the augmented loop is a little slower than the timed plain pass; evaluation and set-up on top
    epoch_s = 1.15 * n / images_per_s
    recipe = RECIPES["resnet18"]
    probe_model = build_model("resnet18", in_channels=ds.channels, image_size=ds.x_train.shape[-1],
                              num_classes=ds.num_classes).to(device).eval()
    per = int(round(0.01 * n))
    idx = np.flatnonzero(ds.y_train == 0)[:per]
    probe_steps = 6
    brew_poisons([probe_model], ds.x_train[idx], ds.y_train[idx], ds.x_test[:1], 1, eps=16 / 255, steps=2,
                 max_shift=4, flip=True, precision="bf16", device=device)  # warm-up
    began = time.perf_counter()
    brew_poisons([probe_model], ds.x_train[idx], ds.y_train[idx], ds.x_test[:1], 1, eps=16 / 255, steps=probe_steps,
                 max_shift=4, flip=True, precision="bf16", device=device)
    step_s = (time.perf_counter() - began) / (probe_steps + 2)  # + the target gradient and the final score
    available = suite.left() - reserve_s - 20
    epochs, restarts = 0, 0
    fewest = min(10, max_epochs)  # below 10 epochs a ResNet-18 victim is far from the literature's
    for e in range(max_epochs, fewest - 1, -1):
        craft_budget = available - 3 * e * epoch_s  # the surrogate, the victim and the clean control
        # 1.3: each restart also scores its result, and the probe runs on untrained weights
        r = int(craft_budget // (1.3 * targets * steps * step_s)) if craft_budget > 0 else 0
        if r >= 2 or (e == fewest and r >= 1):
            epochs, restarts = e, min(r, 8)
            break
    if plan_epochs:
        epochs, restarts = plan_epochs, plan_restarts or 1
    plan = {"epoch_s_estimate": round(epoch_s, 2), "crafting_step_s": round(step_s, 4), "epochs": epochs,
            "restarts": restarts, "steps": steps, "targets": targets, "poisons_per_target": per,
            "seconds_available": round(available, 1)}
    suite.save("brew_plan", plan)
    if not epochs:
        suite.save("brew", {"skipped": "too little time left for a ResNet-18 surrogate, brew and two victims"})
        return
    config = TrainConfig.from_recipe("resnet18", in_channels=ds.channels, epochs=epochs, seed=seed, device=device)
    surrogate_config = TrainConfig(**{**config.to_dict(), "seed": 10_000 + seed})
    result = train(ds.x_train, ds.y_train, num_classes=ds.num_classes, config=surrogate_config, progress=False)
    surrogate_acc = evaluate(result.model, ds.x_test, ds.y_test, num_classes=ds.num_classes,
                             precision=config.resolved_precision(), tta="flip")["accuracy"]
    suite.save("brew_surrogate", {"epochs": epochs, "seconds": round(result.seconds, 1),
                                  "accuracy": surrogate_acc, "recipe": {k: recipe[k] for k in recipe}})
    attack = make_attack("gradient-matching", budget=0.01, eps=16 / 255, targets=targets, restarts=restarts,
                         steps=steps, precision="bf16", device=device)
    began = time.perf_counter()
    poisoned = attack.poison(ds, seed=seed, model=result.model, log=say)
    rec, targeted = poisoned.attack, TargetedRecord.from_attack(poisoned.attack, required=True)
    suite.save("brew_crafting", {"seconds": round(time.perf_counter() - began, 1),
                                 "seconds_per_target": rec["crafting_seconds"], "targets": list(targeted.targets),
                                 "true_labels": list(targeted.true_labels),
                                 "adversarial_classes": list(targeted.adversarial_classes),
                                 "alignment_loss": list(targeted.alignment_loss),
                                 "crafting_device": rec["crafting_device"]})
    began = time.perf_counter()
    # the clean control: the same victim recipe and seed on the training split without the poisons
    report = validate_poisoned(poisoned, runs=1, config=config, clean_control=True)
    suite.save("brew", {
        "success_rate": report["success_rate"], "clean_accuracy": report["clean_accuracy"],
        "successes": [t["success"] for t in report["targets"]],
        "adversarial_probability": [t.get("adversarial_probability") for t in report["targets"]],
        "control_success_rate": report["control"]["success_rate"],
        "control_clean_accuracy": report["control"]["clean_accuracy"],
        "victim_epochs": epochs, "victims": 1, "seconds": round(time.perf_counter() - began, 1)})


def fast_net(suite: Suite, ds, device: str, seed: int, model: str = "airnet-wide") -> None:
    recipe = RECIPES[model]
    epoch_guess = 100.0 if device == "cpu" else 2.0
    epochs = int(recipe["epochs"])
    if suite.left() < epochs * epoch_guess + 30:
        suite.save("fast_net", {"skipped": f"{suite.left():.0f} s left"})
        return
    config = TrainConfig.from_recipe(model, in_channels=ds.channels, seed=seed, device=device)
    result = train(ds.x_train, ds.y_train, num_classes=ds.num_classes, config=config, progress=False)
    tta = config.resolved_tta(ds.channels)
    acc = evaluate(result.model, ds.x_test, ds.y_test, num_classes=ds.num_classes,
                   precision=config.resolved_precision(), tta=tta)["accuracy"]
    suite.save("fast_net", {"model": model, "epochs": epochs, "train_seconds": round(result.seconds, 1),
                            "tta": tta, "accuracy_tta": acc, "images_per_second": round(result.images_per_second)})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, help="the CIFAR-10 JPEG copy's folder (or cifar10 / an .npz)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", type=Path, required=True, help="folder for suite.json")
    ap.add_argument("--budget-s", type=float, default=540.0, help="seconds the whole run may take")
    ap.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    ap.add_argument("--targets", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only-brew", action="store_true", help="skip the throughput and fast-net stages")
    ap.add_argument("--brew-epochs", type=int, help="fix the brew's epochs instead of fitting them to the budget")
    ap.add_argument("--brew-restarts", type=int, help="with --brew-epochs: the restarts (default 1)")
    ap.add_argument("--images-per-s", type=float, default=11815.0,
                    help="with --only-brew: ResNet-18's training images/s for the plan (default: an H200's)")
    ap.add_argument("--quick", action="store_true", help="1,000 training images, tiny budgets: a smoke test")
    args = ap.parse_args(argv)
    suite = Suite(args.out, args.budget_s)
    began = time.perf_counter()
    ds = load_dataset(args.dataset, data_dir=args.data_dir)
    if args.quick:
        ds = ds.subset(1000, 300, seed=0)
    suite.save("dataset", {"name": ds.name, "train": len(ds.y_train), "test": len(ds.y_test),
                           "load_seconds": round(time.perf_counter() - began, 1)})
    models = ["resnet18", "resnet20", "airnet"]
    if args.only_brew:
        images_per_s = args.images_per_s
    else:
        images_per_s = throughput(suite, ds, args.device, models, 512 if args.quick else 12800)["resnet18"][
            "poisonlab_images_per_s"]
    witches_brew(suite, ds, args.device, 2 if args.quick else args.targets, images_per_s,
                 reserve_s=0 if args.quick or args.only_brew else 40,
                 max_epochs=2 if args.quick else int(RECIPES["resnet18"]["epochs"]),
                 seed=args.seed, steps=8 if args.quick else STEPS, plan_epochs=args.brew_epochs,
                 plan_restarts=args.brew_restarts)
    if not args.only_brew:
        fast_net(suite, ds, args.device, args.seed)
    say(f"done in {time.perf_counter() - suite.start:.0f} s")
    return 0


def say(message: str) -> None:
    print(f"[gpu_suite] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
