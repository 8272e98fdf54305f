"""Detection benchmark: every poisonlab detector against ART and cleanlab, on the same features.

Scenarios (``--scenarios``; the first five by default):

- ``mnist-uniform-5``, ``mnist-uniform-10``, ``mnist-uniform-20``: uniform label flips of 5/10/20% of MNIST;
- ``mnist-targeted``: 30% of MNIST's 2s relabelled 7;
- ``fashion-uniform-10``: a uniform 10% flip of Fashion-MNIST (Debian's ``dataset-fashion-mnist``);
- ``mnist-fgsm-10``: 10% FGSM poisons at the paper's eps 2.0 (not by default: it trains a surrogate too);
- ``cifar-uniform-10``, ``cifar-cat-to-dog``: a uniform 10% flip of CIFAR-10 and half of its cats relabelled
  dog (the presets of ``examples/cifar10.toml``), from ``--cifar`` (``cifar10``: the official archive in the
  cache, or an image folder such as the JPEG copy). Not by default: each trains ``--cifar-model`` with its
  recipe (``poisonlab.models.RECIPES``), minutes on a GPU, a quarter of an hour or more on two CPU cores.

Features: the penultimate activations of the paper CNN trained on each poisoned set (``TrainConfig(epochs,
seed)``; on CIFAR-10 ``--cifar-model`` with its recipe), computed once and cached under ``--cache`` (default ``benchmarks/.cache``; an ``.npz`` per
scenario, keyed by the dataset slice, attack, seed, training config, torch threads and poisonlab version),
so reruns only re-run the detectors. Every method sees the same features and labels:

- poisonlab: every registered detector with its defaults (``contamination="auto"``);
- ART (``adversarial-robustness-toolbox``): ``ActivationDefence`` (PCA 10, 2-means, ``"smaller"``) and
  ``SpectralSignatureDefense`` given the true poison rate (its rule needs one);
- cleanlab: ``find_label_issues`` on 5-fold kNN out-of-fold probabilities, and on the softmax of the
  feature CNN itself (the probabilities a user of cleanlab has at hand after training once);
- a 10-d kNN label vote (PCA 10, k 50), the plain job behind ``deep-knn`` and ``knn``.

Columns: F1 with each method's own threshold; ``F1@rate``, the F1 of flagging the true number of poisons
by score (an oracle diagnostic: it knows the poison rate); ROC-AUC; detection seconds; and ``x ref``, the
time relative to the reference doing the same job, measured in the same process after one untimed
warm-up run of every method on every 20th row of the first scenario (ART's activation
clustering for ``activation-clustering``, ART's spectral signatures for ``spectral``, cleanlab for
``confident-learning``, the kNN vote for the others). The summary gives, per scenario, the best poisonlab
detector, the best reference (ART or cleanlab; the kNN vote is not a library), the share of the
reference's error (1 - F1) that poisonlab removes, and the recommended detector (``DEFAULT_DETECTOR``).

    python benchmarks/detection.py [--quick] [--seed 0] [--epochs 3] [--scenarios NAME ...]
                                   [--defenses NAME ...] [--no-references] [--cache DIR] [--out rows.json]
    python benchmarks/detection.py --scenarios cifar-uniform-10 cifar-cat-to-dog --cifar path/to/cifar10-jpeg

``--quick``: a class-stratified slice of 12,000 training images and 2-epoch models. The references
need ``pip install adversarial-robustness-toolbox cleanlab`` (benchmark only; rows say when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from poisonlab import __version__
from poisonlab._io import save_npz, write_json
from poisonlab.attacks import make_attack
from poisonlab.data import load_dataset, read_npz
from poisonlab.defenses import DETECTORS, compute_features, detect_poisons, detection_metrics, seeded_detector
from poisonlab.defenses.metrics import f1_at_rate
from poisonlab.errors import PoisonlabError
from poisonlab.experiment.store import array_fingerprint, digest
from poisonlab.models import MODEL_NAMES, RECIPES
from poisonlab.training import TrainConfig, evaluate, predict_logits, train
from references import (art_activation_clustering, art_spectral_signatures, available, cleanlab_knn,
                        cleanlab_softmax, knn_vote)

SCENARIOS: dict[str, tuple[str, str, dict]] = {
    "mnist-uniform-5": ("mnist", "label-flip", {"rate": 0.05}),
    "mnist-uniform-10": ("mnist", "label-flip", {"rate": 0.10}),
    "mnist-uniform-20": ("mnist", "label-flip", {"rate": 0.20}),
    "mnist-targeted": ("mnist", "label-flip", {"rate": 0.30, "source_class": 2, "target_class": 7}),
    "fashion-uniform-10": ("fashion-mnist", "label-flip", {"rate": 0.10}),
    "mnist-fgsm-10": ("mnist", "fgsm", {"rate": 0.10, "eps": 2.0}),
    "cifar-uniform-10": ("cifar10", "label-flip", {"rate": 0.10}),
    "cifar-cat-to-dog": ("cifar10", "label-flip", {"rate": 0.50, "source_class": 3, "target_class": 5}),
}
DEFAULT_SCENARIOS = list(SCENARIOS)[:5]
QUICK = {"n_train": 12000, "n_test": 1000, "epochs": 2}
DEFAULT_DETECTOR = "ensemble" if "ensemble" in DETECTORS else None
REFERENCE_OF = {"activation-clustering": "ART activation-clustering", "spectral": "ART spectral",
                "confident-learning": "cleanlab kNN-oof"}
KNN_REFERENCE = "kNN vote (10-d)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="12,000-image slices, 2-epoch models")
    ap.add_argument("--seed", type=int, default=0, help="attack, training, subset and detector seed")
    ap.add_argument("--epochs", type=int, help="epochs of the feature model (default 3, --quick 2)")
    ap.add_argument("--scenarios", nargs="+", default=DEFAULT_SCENARIOS, choices=list(SCENARIOS), metavar="NAME")
    ap.add_argument("--defenses", nargs="+", default=sorted(DETECTORS), choices=sorted(DETECTORS), metavar="NAME")
    ap.add_argument("--no-references", action="store_true", help="poisonlab detectors only")
    ap.add_argument("--cifar", default="cifar10", help="CIFAR-10 for the cifar scenarios: cifar10 (the official "
                    "archive, from the cache) or an image folder such as the JPEG copy")
    ap.add_argument("--cifar-model", default="airnet-wide", choices=MODEL_NAMES,
                    help="feature model on CIFAR-10 (default airnet-wide)")
    ap.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / ".cache")
    ap.add_argument("--out", help="also write every row to this JSON file")
    args = ap.parse_args()

    os.environ.setdefault("POISONLAB_CACHE", str(args.cache / "data"))
    epochs = args.epochs or (QUICK["epochs"] if args.quick else 3)
    found = available()
    print(f"# seed {args.seed}, feature model: paper CNN, {epochs} epoch(s) ({args.cifar_model} with its recipe on "
          f"CIFAR-10), {torch.get_num_threads()} torch "
          f"threads; {'quick slices' if args.quick else 'full training sets'}; {os.cpu_count()} cores, load "
          f"average {os.getloadavg()[0]:.2f}; references: ART {'yes' if found['art'] else 'missing'}, "
          f"cleanlab {'yes' if found['cleanlab'] else 'missing'}")
    rows: list[dict] = []
    summary: list[dict] = []
    for scenario in args.scenarios:
        X, probabilities, y, is_poison, note = scenario_features(scenario, seed=args.seed, epochs=epochs, quick=args.quick,
                                                                 cache=args.cache, cifar=args.cifar,
                                                                 cifar_model=args.cifar_model)
        rate = float(is_poison.mean())
        if not rows:
            warm_up(X, probabilities, y, is_poison, args, found)
        print(f"\n## {scenario}: {len(y)} samples, {int(is_poison.sum())} poisons ({rate:.1%}); {note}")
        scenario_rows = run_poisonlab(scenario, X, y, is_poison, args.defenses, args.seed)
        if not args.no_references:
            scenario_rows += run_references(scenario, X, probabilities, y, is_poison, args.seed, found)
        print_rows(scenario_rows)
        rows += scenario_rows
        summary.append(summarise(scenario, scenario_rows))
    print_summary(summary)
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")
    if args.out:
        write_json(args.out, {"seed": args.seed, "epochs": epochs, "quick": args.quick, "rows": rows,
                              "summary": summary})


# ----------------------------------------------------------------------------------------------- features

def scenario_features(scenario: str, *, seed: int, epochs: int, quick: bool, cache: Path, cifar: str = "cifar10",
                      cifar_model: str = "airnet-wide") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """The activations (N, D) of the model trained on the scenario's poisoned set (the paper CNN for
    ``epochs``; ``cifar_model`` with its recipe on CIFAR-10), that model's softmax (N, K) on the same
    images, the labels and the poison mask; read from ``cache`` when an entry with the same recipe exists."""
    dataset, attack, params = SCENARIOS[scenario]
    if dataset == "cifar10":
        dataset = cifar
        recipe_epochs = QUICK["epochs"] if quick else RECIPES[cifar_model]["epochs"]
        config = TrainConfig(**{**RECIPES[cifar_model], "epochs": recipe_epochs}, model=cifar_model, seed=seed)
    else:
        config = TrainConfig(epochs=epochs, seed=seed)
    recipe = {"dataset": dataset, "attack": attack, "params": params, "seed": seed, "quick": quick,
              "slice": QUICK if quick else None, "train": config.to_dict(), "threads": torch.get_num_threads(),
              "version": __version__, "softmax": True}
    path = cache / f"{scenario}-{digest(recipe)}.npz"
    if path.is_file():
        try:
            arrays = read_npz(path)
            return (arrays["features"], arrays["probabilities"], arrays["labels"], arrays["is_poison"].astype(bool),
                    f"features from {path}")
        except (PoisonlabError, KeyError):
            pass  # a damaged entry is recomputed
    ds = load_dataset(dataset)
    if quick:
        ds = ds.subset(QUICK["n_train"], QUICK["n_test"], seed=seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        poisoned = make_attack(attack, **params).poison(ds, seed=seed)
    model = train(poisoned.x_train, poisoned.y_train, num_classes=poisoned.num_classes, config=config).model
    X, info = compute_features("activations", poisoned.x_train, poisoned.y_train, model=model)
    logits = predict_logits(model, poisoned.x_train).astype(np.float64)
    accuracy = evaluate(model, ds.x_test, ds.y_test, num_classes=ds.num_classes)["accuracy"]
    info = {**info, "feature_model": config.model, "test_accuracy": accuracy}
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    seconds = time.perf_counter() - start
    check = array_fingerprint(poisoned.y_train)
    save_npz(path, features=X, probabilities=probabilities.astype(np.float32), labels=poisoned.y_train,
             is_poison=poisoned.is_poison,
             recipe=np.asarray(json.dumps({**recipe, "labels": check, "info": info}, default=str)))
    return (X, probabilities.astype(np.float32), poisoned.y_train, poisoned.is_poison,
            f"features of {config.model} ({accuracy:.2%} test accuracy) computed in {seconds:.0f} s, cached in {path}")


# ----------------------------------------------------------------------------------------------- methods

def warm_up(X: np.ndarray, probabilities: np.ndarray, y: np.ndarray, is_poison: np.ndarray, args: argparse.Namespace,
            found: dict[str, bool]) -> None:
    """Run every method once, untimed, on every 20th row: first calls pay for lazy imports and thread
    pools, which would otherwise land on whichever method runs first."""
    rows = slice(None, None, 20)
    if len(y[rows]) < 500:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_poisonlab("warm-up", X[rows], y[rows], is_poison[rows], args.defenses, args.seed)
        if not args.no_references:
            run_references("warm-up", X[rows], probabilities[rows], y[rows], is_poison[rows], args.seed, found)


def run_poisonlab(scenario: str, X: np.ndarray, y: np.ndarray, is_poison: np.ndarray, defenses: list[str],
                  seed: int) -> list[dict]:
    poisoned = _Labels(y, is_poison)
    out = []
    for name in defenses:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                result = detect_poisons(seeded_detector(name, None, seed), X, poisoned)  # type: ignore[arg-type]
            except PoisonlabError as exc:
                out.append({"scenario": scenario, "method": name, "library": "poisonlab", "error": str(exc)})
                continue
        m = result.metrics
        out.append({"scenario": scenario, "method": name, "library": "poisonlab", "f1": m["f1"],
                    "f1_at_rate": f1_at_rate(is_poison, result.scores), "roc_auc": m["roc_auc"],
                    "removed": m["removed"], "seconds": m["seconds_detect"],
                    "reference": REFERENCE_OF.get(name, KNN_REFERENCE)})
    return out


def run_references(scenario: str, X: np.ndarray, probabilities: np.ndarray, y: np.ndarray, is_poison: np.ndarray,
                   seed: int, found: dict[str, bool]) -> list[dict]:
    rate = float(is_poison.mean())
    methods = {KNN_REFERENCE: ("scikit-learn", lambda: knn_vote(X, y, seed=seed))}
    if found["art"]:
        methods["ART activation-clustering"] = ("ART", lambda: art_activation_clustering(X, y, seed=seed))
        methods["ART spectral"] = ("ART", lambda: art_spectral_signatures(X, y, expected_rate=rate))
    if found["cleanlab"]:
        methods["cleanlab kNN-oof"] = ("cleanlab", lambda: cleanlab_knn(X, y, seed=seed))
        methods["cleanlab CNN softmax"] = ("cleanlab", lambda: cleanlab_softmax(probabilities, y))
    out = []
    for name, (library, method) in methods.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            flagged, scores = method()
            seconds = time.perf_counter() - start
        m = detection_metrics(is_poison, flagged, scores)
        out.append({"scenario": scenario, "method": name, "library": library, "f1": m["f1"],
                    "f1_at_rate": f1_at_rate(is_poison, scores) if scores is not None else None,
                    "roc_auc": m["roc_auc"], "removed": m["removed"], "seconds": round(seconds, 4)})
    return out


class _Labels:
    """The two fields of a PoisonedDataset that :func:`detect_poisons` reads."""

    def __init__(self, y: np.ndarray, is_poison: np.ndarray) -> None:
        self.y_train, self.is_poison = y, is_poison


# ----------------------------------------------------------------------------------------------- tables

def print_rows(rows: list[dict]) -> None:
    seconds = {r["method"]: r["seconds"] for r in rows if "seconds" in r}
    print(f"{'method':<28}{'F1':>7}{'F1@rate':>9}{'AUC':>8}{'removed':>9}{'seconds':>9}{'x ref':>7}  reference")
    for r in rows:
        if "error" in r:
            print(f"{r['method']:<28}failed: {r['error']}")
            continue
        ref = r.get("reference")
        ratio = r["seconds"] / seconds[ref] if ref in seconds and seconds[ref] > 0 else None
        r["time_ratio"] = None if ratio is None else round(ratio, 3)
        print(f"{r['method']:<28}{_f(r['f1']):>7}{_f(r['f1_at_rate']):>9}{_f(r['roc_auc']):>8}{r['removed']:>9}"
              f"{r['seconds']:>9.3f}{_f(ratio, 2):>7}  {ref or ''}")
    sys.stdout.flush()


def summarise(scenario: str, rows: list[dict]) -> dict:
    ours = [r for r in rows if r["library"] == "poisonlab" and r.get("f1") is not None]
    # the reference libraries only: the kNN vote is the plain job behind our own kNN detectors, not a library
    theirs = [r for r in rows if r["library"] in ("ART", "cleanlab") and r.get("f1") is not None]
    best = max(ours, key=lambda r: r["f1"], default=None)
    ref = max(theirs, key=lambda r: r["f1"], default=None)
    recommended = next((r for r in ours if r["method"] == DEFAULT_DETECTOR), None)
    cut = None
    if best and ref and ref["f1"] < 1:
        cut = 1 - (1 - best["f1"]) / (1 - ref["f1"])
    return {"scenario": scenario, "best": best and best["method"], "best_f1": best and best["f1"],
            "reference": ref and ref["method"], "reference_f1": ref and ref["f1"], "error_cut": cut,
            "recommended_f1": recommended and recommended["f1"]}


def print_summary(summary: list[dict]) -> None:
    print(f"\n## summary (F1 with each method's own threshold; error cut = 1 - (1 - F1 best) / (1 - F1 ref))")
    print(f"{'scenario':<22}{'best poisonlab':<24}{'F1':>7}  {'best reference':<28}{'F1':>7}{'err cut':>9}"
          f"{'recommended':>13}")
    for s in summary:
        print(f"{s['scenario']:<22}{s['best'] or '-':<24}{_f(s['best_f1']):>7}  {s['reference'] or '-':<28}"
              f"{_f(s['reference_f1']):>7}{_f(s['error_cut'], 2):>9}{_f(s['recommended_f1']):>13}")


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
