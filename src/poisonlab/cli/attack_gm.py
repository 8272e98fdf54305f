"""``poisonlab attack gradient-matching``: Witches' Brew clean-label targeted poisoning.

This module adds one subcommand to the ``attack`` group; :mod:`poisonlab.cli.attack` calls
:func:`register_attack_subcommand` with its subparsers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import nn

from poisonlab.attacks import make_attack
from poisonlab.attacks.gradient_matching import TARGET_SELECTIONS
from poisonlab.cli.common import add_dataset_options, fraction, load_from_args, positive_float, positive_int, status
from poisonlab.data import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.models import build_model
from poisonlab.training import load_weights

HELP = ("Witches' Brew gradient matching: perturb a budget of training images of an adversarial class, labels "
        "untouched, so that retraining makes chosen test images (targets) be classified as that class")


def register_attack_subcommand(attack_subparsers: argparse._SubParsersAction) -> None:
    """Add ``gradient-matching`` to the ``attack`` group's subparsers."""
    p = attack_subparsers.add_parser("gradient-matching", help=HELP, description=HELP)
    add_dataset_options(p)
    p.add_argument("--budget", type=fraction, default=0.01, metavar="B",
                   help="share of the training set to poison for each target, in disjoint sets (default 0.01)")
    p.add_argument("--eps", type=positive_float, default=16.0, metavar="E",
                   help="L-infinity bound in pixel units out of 255 (default 16, i.e. 16/255)")
    p.add_argument("--targets", type=positive_int, default=1, metavar="T",
                   help="target test images, chosen by the seed among those the surrogate gets right (default 1)")
    p.add_argument("--restarts", type=positive_int, default=8, metavar="R",
                   help="random restarts per target; the lowest alignment loss is kept (default 8)")
    p.add_argument("--steps", type=positive_int, default=250, metavar="S",
                   help="signed-Adam steps per restart (default 250)")
    p.add_argument("--tau", type=positive_float, default=0.1, help="step size in units of eps (default 0.1)")
    p.add_argument("--ensemble", type=positive_int, default=1, metavar="M",
                   help="surrogate models to average the alignment loss over (default 1)")
    p.add_argument("--surrogate-epochs", type=positive_int, default=3, metavar="N",
                   help="epochs of each surrogate trained on the clean data (default 3)")
    p.add_argument("--surrogate", type=Path, metavar="WEIGHTS",
                   help="use this trained paper CNN (model.safetensors from 'poisonlab train') as a surrogate")
    p.add_argument("--max-shift", type=int, default=2, metavar="PX",
                   help="largest random translation during crafting, in pixels (default 2)")
    p.add_argument("--no-augment", action="store_true", help="craft without random translations")
    p.add_argument("--target-selection", choices=TARGET_SELECTIONS, default="random",
                   help="random: random correctly classified test images and random wrong classes (the "
                        "reference protocol, default); low-margin: images among the 5%% with the smallest "
                        "surrogate margin, each with its runner-up class (compare with validate --clean-control)")
    p.add_argument("--seed", type=int, default=0, help="seeds targets, classes, poisons, surrogates and brewing "
                                                       "(default 0)")
    p.add_argument("--out", type=Path, required=True, metavar="P.npz", help="where to write the poisoned dataset")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    ds = load_from_args(args)
    attack = make_attack("gradient-matching", budget=args.budget, eps=args.eps / 255, targets=args.targets,
                         restarts=args.restarts, steps=args.steps, tau=args.tau, ensemble=args.ensemble,
                         surrogate_epochs=args.surrogate_epochs, augment=not args.no_augment,
                         max_shift=args.max_shift, target_selection=args.target_selection)
    model = _load_surrogate(args.surrogate, ds) if args.surrogate else None
    if model is None or args.ensemble > 1:
        status(f"training {args.ensemble - (model is not None)} surrogate(s) for {args.surrogate_epochs} epoch(s)")
    poisoned = attack.poison(ds, seed=args.seed, model=model)
    poisoned.save(args.out)
    record = poisoned.attack
    for k, target in enumerate(record["targets"]):
        status(f"target test #{target} (class {record['target_true_labels'][k]} -> "
               f"{record['adversarial_classes'][k]}, surrogate margin {record['target_margins'][k]:.2f}): "
               f"{len(record['poison_indices'][k])} poisons, alignment loss "
               f"{record['alignment_loss'][k]:.4f}, {record['crafting_seconds'][k]:.1f} s")
    n, total = poisoned.n_poison, len(poisoned.y_train)
    print(f"gradient-matching: poisoned {n} of {total} training samples ({100 * n / total:.2f}%) for "
          f"{len(record['targets'])} target(s) with eps {args.eps:g}/255; wrote {args.out}")
    return 0


def _load_surrogate(path: Path, ds: Dataset) -> nn.Module:
    """A paper CNN with the weights written by 'poisonlab train' (safetensors, no pickle)."""
    if not path.is_file():
        raise PoisonlabError(f"{path}: no such file")
    model = build_model("paper-cnn", image_size=ds.image_size, num_classes=ds.num_classes)
    return load_weights(model, path).eval()
