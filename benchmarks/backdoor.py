"""BadNets end to end (MNIST by default, any dataset and model): does the backdoor take, and which detector
removes it?

Reads top to bottom: train a clean model and a model on the BadNets-poisoned set (1% of the training set,
all-to-one to class 0, the default 3x3 checkerboard one pixel in from the top-left corner), measure
clean accuracy, attack success rate (ASR: triggered test images of the other classes classified as the
target) and robust accuracy; then fit every detector in ``poisonlab.defenses.DETECTORS`` on the attacked
model's penultimate activations, score it against the poison mask (F1), retrain on what it keeps (the
attacked model's number of optimizer steps; 3 epochs by default with the paper-cnn recipe's learning rate
and batch size, since the recipe's single epoch is too short for a 1% backdoor to be learnt) and measure ASR and clean accuracy again. The clean model's
ASR is the base rate of the trigger alone. With ``--references`` ART's ``ActivationDefence`` and
``SpectralSignatureDefense`` run on the same activations and are scored and retrained the same way (ART
only in the benchmark's environment: ``python -m venv /work/benchenv --system-site-packages &&
/work/benchenv/bin/pip install adversarial-robustness-toolbox``).

Goals (issue 17): ASR >= 95% with clean accuracy within 0.3 points of clean training; after the best
defense ASR <= 5% with clean accuracy kept.

    python benchmarks/backdoor.py --quick                    # a 12,000-image slice of MNIST
    python benchmarks/backdoor.py --dataset path/to/cifar10-jpeg --model fastnet --threads 2

Other models train with their own recipe (``poisonlab.models.RECIPES``: epochs, batch size, optimizer,
learning rate, weight decay, label smoothing), with the augmentation and flip test-time augmentation that
``TrainConfig`` resolves for the dataset (random crop and flip on colour images); accuracy and ASR are
measured as ``poisonlab train`` measures accuracy (with that TTA).
    python benchmarks/backdoor.py --references --out rows.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from poisonlab._io import write_json
from poisonlab.attacks import BackdoorRecord, backdoor_metrics, make_attack
from poisonlab.attacks.triggers import POSITIONS
from poisonlab.data import load_dataset
from poisonlab.defenses import DETECTORS, detection_metrics, run_defense
from poisonlab.models import RECIPES
from poisonlab.parallel import keep_freed_memory
from poisonlab.training import TrainConfig, epoch_steps, extract_features, metrics_from_predictions, predict_logits, \
    train

sys.path.insert(0, str(Path(__file__).resolve().parent))
import references  # noqa: E402  (the ART wrappers beside this script)

GOAL_ASR, GOAL_ACCURACY_GAP, GOAL_DEFENDED_ASR = 0.95, 0.003, 0.05
PAPER_CNN_EPOCHS = 3


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    keep_freed_memory()  # no page faults on every training step's fresh buffers
    torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)
    if args.quick:
        ds = ds.subset(12000, 2000, seed=args.seed)
    epochs = args.epochs or (PAPER_CNN_EPOCHS if args.model == "paper-cnn" else None)
    config = TrainConfig.from_recipe(args.model, in_channels=ds.channels, epochs=epochs, seed=args.seed,
                                     precision=args.precision)
    tta = config.resolved_tta(ds.channels)
    attack = make_attack("badnets", rate=args.rate, target_class=args.target_class, trigger=args.trigger,
                         position=args.position)
    poisoned = attack.poison(ds, seed=args.seed)
    record = BackdoorRecord.from_attack(poisoned.attack, required=True)
    assert record is not None
    x_trig, index = record.triggered_test_set(ds.x_test, ds.y_test)
    y_trig = ds.y_test[index]
    _say(f"{ds.name}: {len(ds.y_train)} train / {len(ds.y_test)} test; badnets {poisoned.n_poison} poisons "
         f"({100 * poisoned.n_poison / len(ds.y_train):.2f}%) -> class {args.target_class}; {len(index)} triggered "
         f"test images; {args.model}, {config.epochs} epoch(s), augmentation {config.resolved_augment(ds.channels)}, "
         f"TTA {tta}, {torch.get_num_threads()} thread(s), {config.resolved_precision()}")

    def fit_and_score(x: np.ndarray, y: np.ndarray, steps: int | None, label: str) -> tuple[dict, torch.nn.Module]:
        run_config = TrainConfig(**{**config.to_dict(), "steps": steps})
        trained = train(x, y, num_classes=ds.num_classes, config=run_config, progress=False)
        precision = run_config.resolved_precision()
        pred = predict_logits(trained.model, ds.x_test, precision=precision, tta=tta).argmax(axis=1)
        pred_trig = predict_logits(trained.model, x_trig, precision=precision, tta=tta).argmax(axis=1)
        row = {"accuracy": metrics_from_predictions(ds.y_test, pred, num_classes=ds.num_classes)["accuracy"],
               **backdoor_metrics(pred_trig, y_trig, record.target_class), "seconds_train": round(trained.seconds, 2)}
        _say(f"{label}: clean accuracy {100 * row['accuracy']:.2f}%, ASR {100 * row['attack_success_rate']:.2f}%, "
             f"robust accuracy {100 * row['robust_accuracy']:.2f}% ({trained.seconds:.0f} s)")
        return row, trained.model

    report: dict = {"settings": {"dataset": ds.name, "model": args.model, "tta": tta, "n_train": int(len(ds.y_train)), "n_test": int(len(ds.y_test)),
                                 "rate": args.rate, "target_class": args.target_class, "trigger": args.trigger,
                                 "position": args.position,
                                 "seed": args.seed, "train": config.to_dict(), "threads": torch.get_num_threads(),
                                 "n_poison": poisoned.n_poison, "n_triggered": int(len(index))}}
    clean, _ = fit_and_score(ds.x_train, ds.y_train, None, "clean")
    attacked, model = fit_and_score(poisoned.x_train, poisoned.y_train, None, "attacked")
    steps = config.epochs * epoch_steps(len(poisoned.y_train), config.batch_size)  # every retraining's budget
    start = time.perf_counter()
    X = extract_features(model, poisoned.x_train, precision=config.resolved_precision())
    report["seconds_features"] = round(time.perf_counter() - start, 2)
    rows = {"clean": clean, "attacked": attacked}

    # each detector: detect on the attacked model's activations, retrain on what it keeps, ASR again
    flagged_by: dict[str, tuple[np.ndarray, dict]] = {}
    for name in args.defenses or list(DETECTORS):
        result = run_defense(poisoned, name, features=X, seed=args.seed)
        flagged_by[name] = (result.flagged, {"seconds_detect": result.metrics["seconds_detect"]})
    if args.references:
        if not references.available()["art"]:
            _say("ART is not installed here: no references (see the module docstring)")
        else:
            for name, fn in (("ART ActivationDefence", lambda: references.art_activation_clustering(
                                  X, poisoned.y_train, seed=args.seed)),
                             ("ART SpectralSignatureDefense", lambda: references.art_spectral_signatures(
                                  X, poisoned.y_train, expected_rate=args.rate))):
                start = time.perf_counter()
                flagged, _ = fn()
                flagged_by[name] = (np.asarray(flagged, dtype=bool),
                                    {"seconds_detect": round(time.perf_counter() - start, 3)})
    retrained: dict[bytes, dict] = {}
    blank = {"accuracy": None, "attack_success_rate": None, "robust_accuracy": None}
    retrain = [n for n in flagged_by if args.retrain is None or n in args.retrain or n.startswith("ART")]
    for name in sorted(flagged_by, key=lambda n: n not in retrain):  # retrained first: their lines come early
        flagged, extra = flagged_by[name]
        scores = detection_metrics(poisoned.is_poison, flagged, None)
        key = np.packbits(flagged).tobytes()
        if key not in retrained and name in retrain:  # detectors keeping the same samples share one retraining
            retrained[key] = fit_and_score(poisoned.x_train[~flagged], poisoned.y_train[~flagged], steps,
                                           f"{name} (F1 {_num(scores['f1'])})")[0]
        rows[name] = {**retrained.get(key, blank), **extra, "f1": scores["f1"], "precision": scores["precision"],
                      "recall": scores["recall"], "removed": int(flagged.sum()),
                      "poisons_removed": int((flagged & poisoned.is_poison).sum())}
        _say(f"{name}: F1 {_num(scores['f1'])}, removed {rows[name]['removed']} ({rows[name]['poisons_removed']} "
             "poisons)")
    report["rows"] = rows
    report["goals"] = _goals(rows, list(flagged_by))
    _print_table(rows)
    for line in report["goals"]["lines"]:
        _say(line)
    if args.out:
        write_json(args.out, report)
    return 0


def _goals(rows: dict[str, dict], defenses: list[str]) -> dict:
    clean, attacked = rows["clean"], rows["attacked"]
    gap = clean["accuracy"] - attacked["accuracy"]
    ours = [d for d in defenses if not d.startswith("ART") and rows[d]["attack_success_rate"] is not None]
    best = min(ours, key=lambda d: (rows[d]["attack_success_rate"], -rows[d]["accuracy"])) if ours else None
    lines = [f"goal ASR >= {100 * GOAL_ASR:.0f}%: {100 * attacked['attack_success_rate']:.2f}% "
             f"({'met' if attacked['attack_success_rate'] >= GOAL_ASR else 'NOT met'})",
             f"goal clean accuracy within {100 * GOAL_ACCURACY_GAP:.1f} pp of clean training: {100 * gap:+.2f} pp "
             f"lower ({'met' if gap <= GOAL_ACCURACY_GAP else 'NOT met'})"]
    if best is not None:
        b = rows[best]
        kept = clean["accuracy"] - b["accuracy"]
        lines.append(f"goal best defense ASR <= {100 * GOAL_DEFENDED_ASR:.0f}% with clean accuracy kept: {best} "
                     f"{100 * b['attack_success_rate']:.2f}% ASR, accuracy {100 * b['accuracy']:.2f}% "
                     f"({100 * kept:+.2f} pp below clean) "
                     f"({'met' if b['attack_success_rate'] <= GOAL_DEFENDED_ASR and kept <= GOAL_ACCURACY_GAP else 'NOT met'})")
    return {"best_defense": best, "accuracy_gap": gap, "lines": lines}


def _print_table(rows: dict[str, dict]) -> None:
    header = ("scenario", "F1", "removed (poisons)", "clean acc", "ASR", "robust acc", "detect s")
    lines = [header]
    for name, r in rows.items():
        lines.append((name, _num(r.get("f1")), f"{r['removed']} ({r['poisons_removed']})" if "removed" in r else "",
                      _pct(r["accuracy"]), _pct(r["attack_success_rate"]), _pct(r["robust_accuracy"]),
                      _num(r.get("seconds_detect"), 2)))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(line, widths))))


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _say(line: str) -> None:
    print(f"backdoor: {line}", file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist",
                   help="a dataset name (mnist, fashion-mnist, cifar10) or an image folder (default mnist)")
    p.add_argument("--model", default="paper-cnn", choices=sorted(RECIPES),
                   help="model and its training recipe (poisonlab.models.RECIPES; default paper-cnn)")
    p.add_argument("--quick", action="store_true", help="a class-stratified 12,000 / 2,000 slice of the dataset")
    p.add_argument("--rate", type=float, default=0.01, help="poisons, share of the training set (default 0.01)")
    p.add_argument("--target-class", type=int, default=0, help="all-to-one target (default 0)")
    p.add_argument("--trigger", default="checkerboard", help="trigger pattern or image file (default checkerboard)")
    p.add_argument("--position", default="top-left", choices=POSITIONS,
                   help="patch corner (default top-left: the paper CNN's last pooling drops the bottom row and "
                        "right column of its 5x5 map, so it barely sees a bottom-right patch; docs/measurements.md)")
    p.add_argument("--epochs", type=int,
                   help=f"training epochs (default: {PAPER_CNN_EPOCHS} for paper-cnn, whose recipe's single epoch is "
                        "too short for a 1%% backdoor; the recipe's own for the other models)")
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    p.add_argument("--defenses", nargs="+", choices=sorted(DETECTORS), help="detectors (default: every one)")
    p.add_argument("--retrain", nargs="+", choices=sorted(DETECTORS),
                   help="retrain (ASR after filtering) only after these detectors, first (default: after every one; "
                        "every detector's F1 is measured either way; ART's references are always retrained)")
    p.add_argument("--references", action="store_true", help="also ART's ActivationDefence and SpectralSignatureDefense")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", type=Path, help="write the rows as JSON")
    return p.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(main())
