"""``poisonlab attack NAME``: poison a dataset's training split and write a poisoned ``.npz``.

Every attack goes through one path (:func:`_run`): make the attack from its options (checked), check the
output path, load the data and a surrogate if one is given, poison (a line per long step), save, report. An attack's command is one
:class:`AttackCommand` in ``ATTACK_COMMANDS``: its help, its options, how they become the attack's
parameters, and how to sum up the result.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poisonlab._io import check_output
from poisonlab.attacks import make_attack
from poisonlab.attacks.fgsm import EPS_UNITS
from poisonlab.attacks.gradient_matching import CRAFT_PRECISIONS, TARGET_SELECTIONS
from poisonlab.attacks.blend import DEFAULT_ALPHA
from poisonlab.attacks.label_flip import PRESETS
from poisonlab.attacks.sleeper_agent import SELECTIONS
from poisonlab.attacks.triggers import POSITIONS, TRIGGER_PATTERNS
from poisonlab.cli.common import (add_dataset_options, fraction, load_from_args, load_surrogate, non_negative_int,
                                  positive_float, positive_int, seed, status)
from poisonlab.data import PoisonedDataset
from poisonlab.models import MODEL_NAMES
from poisonlab.training import DEVICES


@dataclass(frozen=True)
class AttackCommand:
    """The command line of one registered attack."""

    help: str
    add_options: Callable[[argparse.ArgumentParser], None]
    to_params: Callable[[argparse.Namespace], dict[str, Any]]
    summary: Callable[[PoisonedDataset], str]  # the end of the one-line result, e.g. "uniformly to other classes"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attack", help="poison a dataset's training split and write a poisoned .npz",
                       description="Attack the training split of a dataset; writes a poisoned .npz (images, labels, "
                                   "the is_poison ground truth and the attack record) for 'poisonlab train "
                                   "--poisoned'.")
    asub = p.add_subparsers(dest="attack", metavar="ATTACK")
    asub.required = True
    for name, command in ATTACK_COMMANDS.items():
        a = asub.add_parser(name, help=command.help, description=command.help)
        add_dataset_options(a)
        command.add_options(a)
        a.add_argument("--seed", type=seed, default=0, help="seeds which samples are attacked, and any surrogate "
                                                           "(default 0)")
        a.add_argument("--out", type=Path, required=True, metavar="P.npz", help="where to write the poisoned dataset")
        a.set_defaults(func=_run, attack_name=name)


def _run(args: argparse.Namespace) -> int:
    command = ATTACK_COMMANDS[args.attack_name]
    attack = make_attack(args.attack_name, **command.to_params(args))  # parameters checked before any loading
    check_output(args.out)
    ds = load_from_args(args)
    model = load_surrogate(args.surrogate, ds) if getattr(args, "surrogate", None) else None
    poisoned = attack.poison(ds, seed=args.seed, model=model, log=status)  # a line per long step
    poisoned.save(args.out)
    n, total = poisoned.n_poison, len(poisoned.y_train)
    print(f"{attack.name}: poisoned {n} of {total} training samples ({100 * n / total:.2f}%) "
          f"{command.summary(poisoned)}; wrote {args.out}")
    return 0


def _add_surrogate_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--surrogate", type=Path, metavar="WEIGHTS",
                   help="use this trained model (model.safetensors from 'poisonlab train') as the surrogate")


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


def _label_flip_summary(poisoned: PoisonedDataset) -> str:
    params = poisoned.attack["params"]
    if params["source_class"] is None:
        return "uniformly to other classes"
    target = params["target_class"] if params["target_class"] is not None else "random other classes"
    return f"from class {params['source_class']} to {target}"


# fgsm -------------------------------------------------------------------------------------------------

def _fgsm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=fraction, default=0.1, metavar="R",
                   help="share in (0, 1] of the training set to replace by adversarial examples (default 0.1)")
    p.add_argument("--eps", type=positive_float, default=None, metavar="E",
                   help="FGSM step (default: 2.0 in normalized units, the paper's; 8/255 in pixel units). In "
                        "normalized units it is "
                        "multiplied by the std of the training pixels (MNIST 0.3081; with --surrogate, that "
                        "model's own std): the paper's 2.0 is 0.616 of the [0, 1] pixel range, i.e. 157 grey "
                        "levels, a visibly noisy image; in pixel units any E >= 1 saturates every pixel to 0 or "
                        "255 by the gradient's sign. Pixels are clamped to [0, 1] and rounded back to uint8")
    p.add_argument("--eps-units", choices=EPS_UNITS, default="auto",
                   help="normalized: E in the model's normalised-input units, as the paper; pixel: E in [0, 1] "
                        "pixel units; auto (default): normalized for grey images, pixel for colour ones")
    p.add_argument("--surrogate-epochs", type=positive_int, default=1, metavar="N",
                   help="epochs of the surrogate CNN trained on the clean data (default 1)")
    _add_surrogate_option(p)


def _fgsm_params(args: argparse.Namespace) -> dict[str, Any]:
    return {"rate": args.rate, "eps": args.eps, "eps_units": args.eps_units, "surrogate_epochs": args.surrogate_epochs}


def _fgsm_summary(poisoned: PoisonedDataset) -> str:
    record = poisoned.attack
    return f"with eps {record['eps_used']:g} {record['eps_units_used']} = {record['eps_pixel']:.4f} in [0, 1] pixels"


# gradient-matching ------------------------------------------------------------------------------------

def _gm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", type=fraction, default=0.01, metavar="B",
                   help="share of the training set to poison for each target, in disjoint sets (default 0.01)")
    p.add_argument("--eps", type=positive_float, default=16.0, metavar="E",
                   help="L-infinity bound in pixel units out of 255 (default 16, i.e. 16/255)")
    p.add_argument("--targets", type=positive_int, default=1, metavar="T",
                   help="target test images, chosen by the seed among those the surrogate gets right (default 1)")
    p.add_argument("--restarts", type=positive_int, default=1, metavar="R",
                   help="random restarts per target; the lowest alignment loss is kept (default 1; the reference "
                        "uses 8, which did not help on MNIST)")
    p.add_argument("--steps", type=positive_int, default=250, metavar="S",
                   help="signed-Adam steps per restart (default 250)")
    p.add_argument("--tau", type=positive_float, default=0.1, help="step size in units of eps (default 0.1)")
    p.add_argument("--ensemble", type=positive_int, default=1, metavar="M",
                   help="surrogate models to average the alignment loss over (default 1)")
    p.add_argument("--surrogate-epochs", type=positive_int, default=3, metavar="N",
                   help="epochs of each surrogate trained on the clean data (default 3)")
    _add_surrogate_option(p)
    _add_crafting_options(p)
    p.add_argument("--target-selection", choices=TARGET_SELECTIONS, default="random",
                   help="random: random correctly classified test images and random wrong classes (the "
                        "reference protocol, default); low-margin: images among the 5%% with the smallest "
                        "surrogate margin, each with its runner-up class (compare with validate --clean-control)")


def _gm_params(args: argparse.Namespace) -> dict[str, Any]:
    return {"budget": args.budget, "eps": args.eps / 255, "targets": args.targets, "restarts": args.restarts,
            "steps": args.steps, "tau": args.tau, "ensemble": args.ensemble, "surrogate_epochs": args.surrogate_epochs,
            "augment": not args.no_augment, "max_shift": args.max_shift, "target_selection": args.target_selection,
            "precision": args.craft_precision, "device": args.device}


def _gm_summary(poisoned: PoisonedDataset) -> str:
    params = poisoned.attack["params"]
    return f"for {params['targets']} target(s) with eps {params['eps'] * 255:g}/255"


# badnets, blend -----------------------------------------------------------------------------------------

def _backdoor_options(p: argparse.ArgumentParser, *, trigger: str) -> None:
    p.add_argument("--rate", type=fraction, default=0.01, metavar="R",
                   help="share in (0, 1] of the whole training set to poison, drawn from the attacked classes "
                        "(default 0.01)")
    p.add_argument("--target-class", type=non_negative_int, default=0, metavar="T",
                   help="the label the poisons get and the class triggered images should land in (default 0)")
    p.add_argument("--source-class", type=non_negative_int, metavar="S",
                   help="attack only class S (source -> target); default: every class but T (all-to-one)")
    p.add_argument("--trigger", default=trigger, metavar="NAME_OR_IMAGE",
                   help=f"a pattern ({', '.join(TRIGGER_PATTERNS)}) or a PNG/JPEG file, resized to the trigger "
                        f"(default {trigger})")
    p.add_argument("--pattern-seed", type=non_negative_int, default=0, metavar="N",
                   help="seeds the noise pattern (default 0)")


def _badnets_options(p: argparse.ArgumentParser) -> None:
    _backdoor_options(p, trigger="checkerboard")
    _patch_options(p, position="top-left", margin=1,
                   size="max(3, round(side * 3 / 28)): 3 on MNIST and CIFAR-10")


def _patch_options(p: argparse.ArgumentParser, *, position: str, margin: int, size: str) -> None:
    p.add_argument("--position", choices=POSITIONS, default=position, help=f"where the patch goes "
                                                                           f"(default {position})")
    p.add_argument("--trigger-size", type=positive_int, metavar="PX", help=f"patch side in pixels (default {size})")
    p.add_argument("--margin", type=non_negative_int, default=margin, metavar="PX",
                   help=f"pixels between the patch and the image edges (default {margin})")


def _sleeper_agent_options(p: argparse.ArgumentParser) -> None:
    _backdoor_options(p, trigger="noise")
    _patch_options(p, position="bottom-right", margin=0, size="a quarter of the side: 8 on CIFAR-10")
    p.add_argument("--eps", type=positive_float, default=16.0, metavar="E",
                   help="L-infinity bound in pixel units out of 255 (default 16, i.e. 16/255)")
    p.add_argument("--steps", type=positive_int, default=250, metavar="S", help="signed-Adam steps (default 250)")
    p.add_argument("--tau", type=positive_float, default=0.1, help="step size in units of eps (default 0.1)")
    p.add_argument("--retrains", type=non_negative_int, default=4, metavar="R",
                   help="times the surrogate is retrained from scratch on the current poisons, evenly spaced over "
                        "the steps (default 4, the paper's)")
    p.add_argument("--surrogate-model", choices=MODEL_NAMES, default="paper-cnn",
                   help="the model trained as surrogate when --surrogate is not given (default paper-cnn); a given "
                        "surrogate is retrained as its own kind")
    p.add_argument("--surrogate-epochs", type=positive_int, metavar="N",
                   help="epochs of every (re)trained surrogate (default: the model's recipe)")
    _add_surrogate_option(p)
    p.add_argument("--source-samples", type=positive_int, default=1000, metavar="N",
                   help="triggered source training images the adversarial gradient averages over (default 1000)")
    p.add_argument("--selection", choices=SELECTIONS, default="gradient-norm",
                   help="which target-class images become poisons: the largest surrogate gradients (default) "
                        "or random ones")
    _add_crafting_options(p)


def _add_crafting_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-shift", type=int, default=None, metavar="PX",
                   help="largest random translation during crafting, in pixels (default 2 for grey images, an "
                        "eighth of the image side for colour ones: 4 on CIFAR-10)")
    p.add_argument("--no-augment", action="store_true",
                   help="craft without random translations (and, for colour images, flips)")
    p.add_argument("--craft-precision", choices=CRAFT_PRECISIONS, default="fp32",
                   help="arithmetic of each crafting step: fp32 (default) or bf16 autocast (faster "
                        "on CPUs with native bf16 and on GPUs)")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="where surrogates train and crafting runs: auto (CUDA when a GPU is present, the "
                        "default), cpu, cuda")


def _sleeper_agent_params(args: argparse.Namespace) -> dict[str, Any]:
    return {"rate": args.rate, "target_class": args.target_class, "source_class": args.source_class,
            "trigger": args.trigger, "pattern_seed": args.pattern_seed, "position": args.position,
            "size": args.trigger_size, "margin": args.margin, "eps": args.eps / 255, "steps": args.steps,
            "tau": args.tau, "retrains": args.retrains, "surrogate_model": args.surrogate_model,
            "surrogate_epochs": args.surrogate_epochs, "source_samples": args.source_samples,
            "selection": args.selection, "augment": not args.no_augment, "max_shift": args.max_shift,
            "precision": args.craft_precision, "device": args.device}


def _blend_options(p: argparse.ArgumentParser) -> None:
    _backdoor_options(p, trigger="noise")
    p.add_argument("--alpha", type=fraction, default=DEFAULT_ALPHA, metavar="A",
                   help=f"blend weight in (0, 1] of the whole-image pattern: x' = (1 - A) x + A pattern "
                        f"(default {DEFAULT_ALPHA})")


def _backdoor_params(args: argparse.Namespace) -> dict[str, Any]:
    params = {"rate": args.rate, "target_class": args.target_class, "source_class": args.source_class,
              "trigger": args.trigger, "pattern_seed": args.pattern_seed}
    if args.attack_name == "badnets":
        params.update(position=args.position, size=args.trigger_size, margin=args.margin)
    else:
        params["alpha"] = args.alpha
    return params


def _backdoor_summary(poisoned: PoisonedDataset) -> str:
    params = poisoned.attack["params"]
    attacked = "every other class" if params["source_class"] is None else f"class {params['source_class']}"
    return f"from {attacked} to {params['target_class']} with trigger {params['trigger']}"


ATTACK_COMMANDS: dict[str, AttackCommand] = {
    "label-flip": AttackCommand(
        "flip the labels of a share of the training set, or of one class (the paper's 'gradient matching')",
        _label_flip_options, _label_flip_params, _label_flip_summary),
    "fgsm": AttackCommand(
        "replace a share of the training images by FGSM adversarial examples of a surrogate CNN (the paper's "
        "'adversarial training attack', eps 2.0)", _fgsm_options, _fgsm_params, _fgsm_summary),
    "gradient-matching": AttackCommand(
        "Witches' Brew gradient matching: perturb a budget of training images of an adversarial class, labels "
        "untouched, so that retraining makes chosen test images (targets) be classified as that class",
        _gm_options, _gm_params, _gm_summary),
    "badnets": AttackCommand(
        "BadNets backdoor (Gu et al. 2017): stamp a small patch into a share of the training images and relabel "
        "them to the target class", _badnets_options, _backdoor_params, _backdoor_summary),
    "blend": AttackCommand(
        "blended backdoor (Chen et al. 2017): mix a whole-image pattern into a share of the training images and "
        "relabel them to the target class", _blend_options, _backdoor_params, _backdoor_summary),
    "sleeper-agent": AttackCommand(
        "Sleeper Agent (Souri et al. 2022): a hidden-trigger, clean-label backdoor; perturb target-class training "
        "images by gradient matching so that a model trained from scratch on them learns the trigger",
        _sleeper_agent_options, _sleeper_agent_params, _backdoor_summary),
}
