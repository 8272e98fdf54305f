"""``poisonlab detect``: run a filtering defense on a poisoned dataset, score it, optionally retrain."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from poisonlab._io import write_json
from poisonlab.cli.common import add_train_options, status, train_config
from poisonlab.data import load_poisoned
from poisonlab.defenses import DETECTORS, FEATURE_KINDS, run_defense
from poisonlab.errors import PoisonlabError
from poisonlab.training import evaluate, train


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="run a filtering defense on a poisoned dataset and score it",
                       description="Fit a detector on features of a poisoned training set, score the flagged "
                                   "samples against the ground truth and write D.json; --retrain also trains on "
                                   "the kept samples and adds the test metrics. The training options set both "
                                   "the model whose activations are the features and the retrained model. "
                                   "--list shows the defenses.")
    p.add_argument("--poisoned", type=Path, metavar="P.npz", help="a poisoned dataset from 'poisonlab attack'")
    p.add_argument("--defense", metavar="NAME", help="a defense name (see --list)")
    p.add_argument("--features", choices=FEATURE_KINDS, default="activations",
                   help="feature space: penultimate activations of a model trained on the poisoned data "
                        "(default), raw pixels, or PCA of the pixels")
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
    missing = [flag for flag, value in (("--poisoned", args.poisoned), ("--defense", args.defense),
                                        ("--out", args.out)) if value is None]
    if missing:
        raise PoisonlabError(f"detect needs {', '.join(missing)} (or --list)")
    if args.out.exists() and args.out.is_dir():
        raise PoisonlabError(f"{args.out}: is a folder; --out takes a JSON file path")
    DETECTORS.check_name(args.defense)
    params = _parse_params(args.param)
    if args.contamination is not None:
        params["contamination"] = args.contamination
    poisoned = load_poisoned(args.poisoned)
    config = train_config(args)
    result = run_defense(poisoned, args.defense, features=args.features, seed=args.seed, train_config=config,
                         detector_params=params, on_empty_class="error" if args.retrain else "warn",
                         progress=not args.quiet)
    record: dict[str, Any] = dict(result.metrics)
    record.update(poisoned=str(args.poisoned), attack=poisoned.attack,
                  flagged_indices=result.flagged_indices.tolist())
    m = result.metrics
    status(f"{args.defense} on {args.features}: removed {m['removed']} of {m['n_samples']} "
           f"({m['poisons_removed']} of {m['n_poison']} poisons), F1 {_fmt(m['f1'])}, "
           f"features {m['seconds_features']:.2f} s, detection {m['seconds_detect']:.2f} s")
    if args.retrain:
        kept = poisoned.keep(result.kept)
        trained = train(kept.x_train, kept.y_train, num_classes=kept.num_classes, config=config,
                        progress=not args.quiet, desc="retrain")
        record["metrics"] = evaluate(trained.model, kept.x_test, kept.y_test, num_classes=kept.num_classes)
        record["retrain"] = {"n_train": int(len(kept.y_train)), "seconds": round(trained.seconds, 3),
                             "config": config.to_dict()}
        status(f"retrained on {len(kept.y_train)} kept samples: test accuracy "
               f"{record['metrics']['accuracy'] * 100:.2f}%")
    write_json(args.out, record)
    status(f"wrote {args.out}")
    return 0


def _print_defenses() -> None:
    width = max(len(name) for name in DETECTORS)
    for name in sorted(DETECTORS):
        doc = (DETECTORS[name].__doc__ or "").strip().splitlines()
        print(f"{name:<{width}}  {doc[0] if doc else ''}", file=sys.stdout)


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

