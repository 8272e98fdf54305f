"""``poisonlab attack label-flip|fgsm``: poison a dataset's training split and write a poisoned ``.npz``.

Each attack is one subcommand: a function that adds its options and a function that turns the parsed
options into the attack's parameters; adding an attack means adding one entry to ``_ATTACK_COMMANDS``.
An attack whose command needs its own runner lives in a module of its own with a
``register_attack_subcommand(subparsers)`` function, named in ``_ATTACK_COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any, Callable

from poisonlab.attacks import make_attack
from poisonlab.attacks.fgsm import EPS_UNITS
from poisonlab.attacks.label_flip import PRESETS
from poisonlab.cli.common import add_dataset_options, fraction, load_from_args, positive_float, positive_int, status
from poisonlab.data import Dataset
from poisonlab.errors import PoisonlabError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attack", help="poison a dataset's training split and write a poisoned .npz",
                       description="Attack the training split of a dataset; writes a poisoned .npz (images, labels, "
                                   "the is_poison ground truth and the attack record) for 'poisonlab train "
                                   "--poisoned'.")
    asub = p.add_subparsers(dest="attack", metavar="ATTACK")
    asub.required = True
    for name, (help_text, add_options, to_params) in _ATTACK_COMMANDS.items():
        a = asub.add_parser(name, help=help_text, description=help_text)
        add_dataset_options(a)
        add_options(a)
        a.add_argument("--seed", type=int, default=0, help="seeds which samples are attacked, and any surrogate "
                                                           "(default 0)")
        a.add_argument("--out", type=Path, required=True, metavar="P.npz", help="where to write the poisoned dataset")
        a.set_defaults(func=_run, attack_name=name, to_params=to_params)
    for module in _ATTACK_COMMAND_MODULES:
        importlib.import_module(f"poisonlab.cli.{module}").register_attack_subcommand(asub)


def _run(args: argparse.Namespace) -> int:
    ds = load_from_args(args)
    attack = make_attack(args.attack_name, **args.to_params(args))
    model = _load_surrogate(args.surrogate, ds) if getattr(args, "surrogate", None) else None
    if args.attack_name == "fgsm" and model is None:
        status(f"training a {attack.surrogate_epochs}-epoch surrogate on the clean data")
    poisoned = attack.poison(ds, seed=args.seed, model=model)
    poisoned.save(args.out)
    n, total = poisoned.n_poison, len(poisoned.y_train)
    print(f"{attack.name}: poisoned {n} of {total} training samples ({100 * n / total:.2f}%) "
          f"{_describe(poisoned.attack)}; wrote {args.out}")
    return 0


def _describe(record: dict[str, Any]) -> str:
    params = record["params"]
    if record["name"] == "label-flip":
        if params["source_class"] is None:
            return "uniformly to other classes"
        target = params["target_class"] if params["target_class"] is not None else "random other classes"
        return f"from class {params['source_class']} to {target}"
    if record["name"] == "fgsm":
        return f"with eps {params['eps']:g} {params['eps_units']} = {record['eps_pixel']:.4f} in [0, 1] pixels"
    return ""


# label-flip -------------------------------------------------------------------------------------------

def _label_flip_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="a named scenario; 'paper': " + ", ".join(f"{k}={v}" for k, v in PRESETS["paper"].items())
                        + " (the closest match to the paper's Figure 2); explicit options override it")
    p.add_argument("--rate", type=fraction, metavar="R",
                   help="share in (0, 1] of the eligible samples to flip: all of them, or those of "
                        "--source-class (default 0.1)")
    p.add_argument("--source-class", type=int, metavar="S", help="targeted: flip only samples of class S")
    p.add_argument("--target-class", type=int, metavar="T",
                   help="targeted: flip them to class T (default: a random class other than S)")


def _label_flip_params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = dict(PRESETS[args.preset]) if args.preset else {"rate": 0.1}
    for key in ("rate", "source_class", "target_class"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    return params


# fgsm -------------------------------------------------------------------------------------------------

def _fgsm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=fraction, default=0.1, metavar="R",
                   help="share in (0, 1] of the training set to replace by adversarial examples (default 0.1)")
    p.add_argument("--eps", type=positive_float, default=2.0, metavar="E",
                   help="FGSM step (default 2.0, the paper's). In normalized units (the default) it is "
                        "multiplied by the std of the training pixels (MNIST 0.3081; with --surrogate, that "
                        "model's own std): the paper's 2.0 is 0.616 of the [0, 1] pixel range, i.e. 157 grey "
                        "levels, a visibly noisy image; in pixel units any E >= 1 saturates every pixel to 0 or "
                        "255 by the gradient's sign. Pixels are clamped to [0, 1] and rounded back to uint8")
    p.add_argument("--eps-units", choices=EPS_UNITS, default="normalized",
                   help="normalized: E in the model's normalised-input units, as the paper; pixel: E in [0, 1] "
                        "pixel units (default normalized)")
    p.add_argument("--surrogate-epochs", type=positive_int, default=1, metavar="N",
                   help="epochs of the surrogate CNN trained on the clean data (default 1)")
    p.add_argument("--surrogate", type=Path, metavar="WEIGHTS",
                   help="use this trained paper CNN (model.safetensors from 'poisonlab train') as the surrogate")


def _fgsm_params(args: argparse.Namespace) -> dict[str, Any]:
    return {"rate": args.rate, "eps": args.eps, "eps_units": args.eps_units, "surrogate_epochs": args.surrogate_epochs}


def _load_surrogate(path: Path, ds: Dataset):
    from poisonlab.models import build_model  # noqa: PLC0415
    from poisonlab.training import load_weights  # noqa: PLC0415

    if not path.is_file():
        raise PoisonlabError(f"{path}: no such file")
    model = build_model("paper-cnn", image_size=ds.image_size, num_classes=ds.num_classes)
    return load_weights(model, path).eval()


# name -> (help, add its options, options -> attack parameters)
_ATTACK_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                                  Callable[[argparse.Namespace], dict[str, Any]]]] = {
    "label-flip": ("flip the labels of a share of the training set, or of one class (the paper's "
                   "'gradient matching')", _label_flip_options, _label_flip_params),
    "fgsm": ("replace a share of the training images by FGSM adversarial examples of a surrogate CNN "
             "(the paper's 'adversarial training attack', eps 2.0)", _fgsm_options, _fgsm_params),
}

# modules under poisonlab.cli that add their own subcommand to this group (in --help order)
_ATTACK_COMMAND_MODULES: tuple[str, ...] = ("attack_gm",)
