"""``poisonlab detect``: run a filtering defense on a poisoned dataset, score it, optionally retrain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from poisonlab import __version__
from poisonlab._io import check_output, save_npz, write_json
from poisonlab.cli.common import add_train_options, read_training_record, status, train_config
from poisonlab.data import PoisonedDataset, cache_dir, load_poisoned, read_npz
from poisonlab.defenses import (DETECTORS, FEATURE_KINDS, RECOMMENDED_DETECTOR, compute_features, run_defense,
                                seeded_detector)
from poisonlab.errors import PoisonlabError
from poisonlab.experiment.store import array_fingerprint, digest
from poisonlab.training import TrainConfig, evaluate, rebuild_model, train


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="run a filtering defense on a poisoned dataset and score it",
                       description="Fit a detector on features of a poisoned training set, score the flagged "
                                   "samples against the ground truth and write D.json; --retrain also trains on "
                                   "the kept samples and adds the test metrics. The training options set both "
                                   "the model whose activations are the features and the retrained model. "
                                   "--list shows the defenses.")
    p.add_argument("--poisoned", type=Path, metavar="P.npz", help="a poisoned dataset from 'poisonlab attack'")
    p.add_argument("--defense", metavar="NAME", default=RECOMMENDED_DETECTOR,
                   help=f"a defense name (see --list; default {RECOMMENDED_DETECTOR}, the recommended one)")
    p.add_argument("--features", choices=FEATURE_KINDS, default="activations",
                   help="feature space: penultimate activations of a model trained on the poisoned data "
                        "(default), raw pixels, or PCA of the pixels. Activations and PCA are cached by the "
                        "file's content and the training options, so several detectors on one file train once")
    p.add_argument("--features-from", type=Path, metavar="RUN|F.npz|MODEL.safetensors",
                   help="features computed elsewhere: the folder of 'poisonlab train --poisoned P.npz' (or its "
                        "model.safetensors), whose model's activations to use, or an .npz with a 'features' "
                        "array (one row per training sample)")
    p.add_argument("--contamination", type=_contamination, metavar="RATE|auto",
                   help="flag this share of samples with the highest scores, or 'auto' (the detector decides "
                        "without knowing the poison rate; the default)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a detector parameter (VALUE read as JSON, else as text), e.g. --param n_components=32; "
                        "repeatable")
    p.add_argument("--retrain", action="store_true",
                   help="train on the kept samples and add the test metrics to the output")
    add_train_options(p)
    p.add_argument("--out", type=Path, metavar="D.json", help="output JSON file")
    p.add_argument("--list", action="store_true", help="list the defenses and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.list:
        _print_defenses()
        return 0
    missing = [flag for flag, value in (("--poisoned", args.poisoned), ("--out", args.out)) if value is None]
    if missing:
        raise PoisonlabError(f"detect needs {', '.join(missing)} (or --list)")
    check_output(args.out)
    params = _parse_params(args.param)
    if args.contamination is not None:
        params["contamination"] = args.contamination
    seeded_detector(args.defense, params, args.seed)  # the name and every parameter checked before any work
    poisoned = load_poisoned(args.poisoned)
    config = train_config(args)
    X, info = _features(args, poisoned, config)
    result = run_defense(poisoned, args.defense, features=X, feature_info=info, seed=args.seed,
                         detector_params=params, on_empty_class="error" if args.retrain else "warn")
    record: dict[str, Any] = dict(result.metrics)
    record.update(poisoned=str(args.poisoned), attack=poisoned.attack,
                  flagged_indices=result.flagged_indices.tolist())
    m = result.metrics
    status(f"{args.defense} on {info['features']}: removed {m['removed']} of {m['n_samples']} "
           f"({m['poisons_removed']} of {m['n_poison']} poisons), F1 {_fmt(m['f1'])}, "
           f"features {m['seconds_features']:.2f} s, detection {m['seconds_detect']:.2f} s")
    if args.retrain:
        kept = poisoned.keep(result.kept)
        trained = train(kept.x_train, kept.y_train, num_classes=kept.num_classes, config=config,
                        progress=not args.quiet, desc="retrain")
        record["metrics"] = evaluate(trained.model, kept.x_test, kept.y_test, num_classes=kept.num_classes,
                                     tta=config.resolved_tta(kept.channels))
        record["retrain"] = {"n_train": int(len(kept.y_train)), "seconds": round(trained.seconds, 3),
                             "config": config.to_dict()}
        status(f"retrained on {len(kept.y_train)} kept samples: test accuracy "
               f"{record['metrics']['accuracy'] * 100:.2f}%")
    write_json(args.out, record)
    status(f"wrote {args.out}")
    return 0


def _features(args: argparse.Namespace, poisoned: PoisonedDataset, config: TrainConfig) -> tuple[np.ndarray, dict]:
    """The detector's features: from ``--features-from``, the cache, or computed (and cached)."""
    if args.features_from is not None:
        return _features_from(args.features_from, poisoned, config)
    if args.features == "pixels":  # nothing worth caching
        return compute_features("pixels", poisoned.x_train, poisoned.y_train)
    activations = args.features == "activations"
    key = digest({"features": args.features, "data": array_fingerprint(poisoned.x_train, poisoned.y_train),
                  "train": config.to_dict() if activations else None, "seed": args.seed,
                  "threads": torch.get_num_threads() if activations else None, "version": __version__})
    path = cache_dir() / "features" / f"{key}.npz"
    if path.is_file():
        try:
            arrays = read_npz(path)
            info = dict(json.loads(str(arrays["info"])), cached=True)
            status(f"{args.features} features of this file reused from {path}")
            return arrays["features"], info
        except (PoisonlabError, KeyError, ValueError):
            pass  # a damaged cache entry is recomputed
    X, info = compute_features(args.features, poisoned.x_train, poisoned.y_train, num_classes=poisoned.num_classes,
                               seed=args.seed, train_config=config, progress=not args.quiet)
    try:
        save_npz(path, features=X, info=np.asarray(json.dumps(info, default=str)))
    except (OSError, PoisonlabError) as exc:
        status(f"features not cached ({exc})")
    return X, info


def _features_from(path: Path, poisoned: PoisonedDataset, config: TrainConfig) -> tuple[np.ndarray, dict]:
    """Features given as an .npz ``features`` array, or the activations of a saved model (a ``train`` run
    folder, whose ``metrics.json`` says how the model was built and on what it trained)."""
    n = len(poisoned.y_train)
    if path.is_dir():
        config = _trained_on(path, poisoned)
        path = path / "model.safetensors"
    if path.suffix == ".safetensors":
        model = rebuild_model(config, tuple(poisoned.x_train.shape[1:]), poisoned.num_classes, path)
        X, info = compute_features("activations", poisoned.x_train, poisoned.y_train, model=model)
        return X, {**info, "features": f"activations of {path.name}"}
    arrays = read_npz(path)
    if "features" not in arrays:
        raise PoisonlabError(f"{path}: no 'features' array (found {', '.join(arrays) or 'none'})")
    X = arrays["features"]
    if X.ndim != 2 or len(X) != n or not np.issubdtype(X.dtype, np.number):
        raise PoisonlabError(f"{path}: 'features' must be a numeric ({n}, D) array for this file's {n} training "
                             f"samples, got {X.dtype} {X.shape}")
    return X.astype(np.float32), {"features": f"features from {path.name}", "dim": int(X.shape[1]), "seconds": 0.0}


def _trained_on(run: Path, poisoned: PoisonedDataset) -> TrainConfig:
    """The training config of a ``poisonlab train`` folder, refused unless it trained on ``poisoned``."""
    metrics_path = run / "metrics.json"
    if not (run / "model.safetensors").is_file() or not metrics_path.is_file():
        raise PoisonlabError(f"{run}: not a 'poisonlab train' folder (needs model.safetensors and metrics.json)")
    config, metrics = read_training_record(metrics_path)
    if metrics.get("n_train") != len(poisoned.y_train) or metrics.get("attack") != poisoned.attack:
        raise PoisonlabError(f"{run}: its model was trained on another dataset (train it with 'poisonlab train "
                             "--poisoned' on this file)")
    return config


def _print_defenses() -> None:
    width = max(len(name) for name in DETECTORS)
    for name in sorted(DETECTORS):
        doc = (DETECTORS[name].__doc__ or "").strip().splitlines()
        mark = " (default)" if name == RECOMMENDED_DETECTOR else ""
        print(f"{name:<{width}}  {doc[0] if doc else ''}{mark}", file=sys.stdout)


def _contamination(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number in [0, 0.5], got {text!r}") from None
    if not 0 <= value <= 0.5:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number in [0, 0.5], got {text!r}")
    return value


def _parse_params(items: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise PoisonlabError(f"--param takes KEY=VALUE, got {item!r}")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"

