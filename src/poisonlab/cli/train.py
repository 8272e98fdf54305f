"""``poisonlab train``: train the victim model on a clean or poisoned dataset and record test metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from poisonlab._io import check_output
from poisonlab.cli.common import add_train_options, load_from_args, positive_int, status, train_config
from poisonlab.data import load_poisoned
from poisonlab.errors import PoisonlabError
from poisonlab.training import train_and_record


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (the paper CNN by default) and write metrics.json and the weights",
                       description="Train on a dataset (--dataset) or a poisoned .npz (--poisoned); writes "
                                   "OUT/metrics.json and OUT/model.safetensors.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", metavar="NAME",
                     help="mnist, fashion-mnist, digits, cifar10, a path to an .npz with x_train, y_train, x_test, "
                          "y_test, or an image folder (DIR/train/CLASS/*, DIR/test/CLASS/*)")
    src.add_argument("--poisoned", type=Path, metavar="P.npz", help="a poisoned dataset from 'poisonlab attack'")
    p.add_argument("--data-dir", type=Path, metavar="DIR", help="folder with the four IDX files, tried first")
    p.add_argument("--subset", type=positive_int, nargs=2, metavar=("N_TRAIN", "N_TEST"),
                   help="train and test on a class-stratified slice")
    add_train_options(p)
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.poisoned and args.subset:
        raise PoisonlabError("--subset applies to --dataset only; slice before attacking")
    config = train_config(args)
    out = check_output(args.out, folder=True)  # created only when the first file is written
    ds = load_poisoned(args.poisoned) if args.poisoned else load_from_args(args)
    metrics = train_and_record(ds, config, out, progress=not args.quiet)
    status(f"test accuracy {metrics['accuracy'] * 100:.2f}% after {config.epochs} epoch(s) in "
           f"{metrics['seconds']:.1f} s; wrote {out / 'metrics.json'}")
    return 0
