"""Options and helpers shared by several subcommands."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from torch import nn

from poisonlab.data import Dataset, load_dataset
from poisonlab.errors import PoisonlabError, PoisonlabWarning
from poisonlab.models import MODEL_NAMES, RECIPES
from poisonlab.seeding import MAX_SEED, check_seed
from poisonlab.training import (AUGMENTATIONS, DEVICES, OPTIMIZERS, PRECISIONS, SCHEDULES, TTAS, TrainConfig,
                                rebuild_model)


def add_dataset_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--dataset", required=required, metavar="NAME",
                        help="mnist, fashion-mnist, digits, cifar10, a path to an .npz with x_train, y_train, x_test, "
                             "y_test, or an image folder (DIR/train/CLASS/*, DIR/test/CLASS/*)")
    parser.add_argument("--data-dir", type=Path, metavar="DIR",
                        help="folder with the four standard IDX files (raw or .gz), tried first")
    parser.add_argument("--subset", type=positive_int, nargs=2, metavar=("N_TRAIN", "N_TEST"),
                        help="use a class-stratified random slice of this many train and test samples")


# the options a model's recipe (``poisonlab.models.RECIPES``) sets under --recipe, as TrainConfig fields
RECIPE_OPTIONS: tuple[str, ...] = ("epochs", "batch_size", "lr", "optimizer", "schedule", "weight_decay",
                                   "label_smoothing", "augment", "tta")


def add_train_options(parser: argparse.ArgumentParser, *, epochs: int = 3) -> None:
    """The training options. Those a recipe sets default to ``None`` here: :func:`train_config` fills them
    from ``--model``'s recipe under ``--recipe``, else from :class:`TrainConfig`'s defaults (``epochs``:
    this command's default), so an option given explicitly always wins."""
    g = parser.add_argument_group("training")
    g.add_argument("--recipe", action="store_true",
                   help="start from --model's training recipe (poisonlab.models.RECIPES: epochs, batch size, "
                        "optimizer, schedule, lr, weight decay, label smoothing, augmentation, TTA); the options "
                        "below that are given explicitly override it")
    g.add_argument("--epochs", type=positive_int, help=f"training epochs (default {epochs})")
    g.add_argument("--batch-size", type=positive_int, help=f"default {TrainConfig.batch_size}")
    g.add_argument("--lr", type=positive_float, help=f"peak learning rate (default {TrainConfig.lr})")
    g.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="adam (default) or sgd (Nesterov momentum, the CIFAR speed-training recipe)")
    g.add_argument("--schedule", choices=SCHEDULES,
                   help="one-cycle (default), or airbench (with --optimizer sgd: warm-up and linear decay, "
                        "momentum 0.85, fast batch-norm biases, lookahead)")
    g.add_argument("--weight-decay", type=non_negative_float, metavar="WD", help="L2 weight decay (default 0)")
    g.add_argument("--label-smoothing", type=unit_interval, metavar="S",
                   help="label smoothing in [0, 1) of the cross-entropy (default 0)")
    g.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="bf16 autocast where the CPU supports it (auto), or force one")
    g.add_argument("--model", choices=MODEL_NAMES, default="paper-cnn", help="the network (default paper-cnn)")
    g.add_argument("--augment", choices=AUGMENTATIONS,
                   help="crop-flip (random crop and flip of each batch), shift-flip (airbench's 2-pixel "
                        "reflected shift, alternating flips), none; auto: crop-flip for colour images only "
                        "(default)")
    g.add_argument("--tta", choices=TTAS,
                   help="test-time augmentation of the evaluation: flip (mean of an image's and its mirror's "
                        "logits), flip-shift (also at one-pixel shifts), none; auto: flip when training "
                        "flipped, i.e. colour images (default)")
    g.add_argument("--device", choices=DEVICES, default="auto",
                   help="where to train and run: auto (CUDA when a GPU is present, the default), cpu, cuda")
    g.add_argument("--seed", type=seed, default=0, help="seeds everything random (default 0)")
    parser.set_defaults(default_epochs=epochs)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of the parsed training options (see :func:`add_train_options`)."""
    base = {name: getattr(TrainConfig, name) for name in RECIPE_OPTIONS}
    base["epochs"] = getattr(args, "default_epochs", base["epochs"])
    if getattr(args, "recipe", False):
        base.update(RECIPES[args.model])
    elif args.model != "paper-cnn" and all(getattr(args, name, None) is None for name in RECIPE_OPTIONS):
        warnings.warn(f"--model {args.model} trains with the generic defaults (adam, lr {TrainConfig.lr}), not "
                      f"its recipe; add --recipe for {args.model}'s own", PoisonlabWarning, stacklevel=2)
    chosen = {name: base[name] if getattr(args, name, None) is None else getattr(args, name)
              for name in RECIPE_OPTIONS}
    return TrainConfig(seed=args.seed, precision=args.precision, device=args.device, model=args.model, **chosen)


def load_from_args(args: argparse.Namespace) -> Dataset:
    ds = load_dataset(args.dataset, data_dir=args.data_dir, progress=status)
    if getattr(args, "subset", None):
        ds = ds.subset(*args.subset, seed=getattr(args, "seed", 0))
    return ds


def load_surrogate(path: Path, ds: Dataset) -> nn.Module:
    """A surrogate for an attack: the model that 'poisonlab train' wrote (``model.safetensors``, no pickle),
    rebuilt for ``ds``'s image shape and classes as its ``metrics.json`` (beside it) describes it."""
    record = Path(path).parent / "metrics.json"
    config = read_training_record(record)[0] if record.is_file() else TrainConfig()
    return rebuild_model(config, tuple(ds.x_train.shape[1:]), ds.num_classes, path)


def read_training_record(path: Path) -> tuple[TrainConfig, dict]:
    """The ``TrainConfig`` and the whole record of a ``metrics.json`` written by 'poisonlab train'."""
    try:
        metrics = json.loads(path.read_text())
        return TrainConfig(**metrics["config"]), metrics
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, PoisonlabError):
            raise
        raise PoisonlabError(f"{path}: cannot read the training record ({exc})") from None


def status(message: str) -> None:
    print(f"poisonlab: {message}", file=sys.stderr)


def seed(text: str) -> int:
    """A seed in 0..2**32-1 (what torch, NumPy and scikit-learn all take)."""
    try:
        return check_seed(int(text))
    except (ValueError, PoisonlabError):
        raise argparse.ArgumentTypeError(f"expected an integer in 0..{MAX_SEED}, got {text!r}") from None


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """A count >= 0 (workers, where 0 means in this process)."""
    return _int_at_least(text, 0, "a non-negative integer")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _number_in(text: str, what: str, ok) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a weight decay)."""
    return _number_in(text, "a number >= 0", lambda v: 0 <= v < float("inf"))


def unit_interval(text: str) -> float:
    """A number in [0, 1) (label smoothing)."""
    return _number_in(text, "a number in [0, 1)", lambda v: 0 <= v < 1)


def fraction(text: str) -> float:
    """A rate in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value
