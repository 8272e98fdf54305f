"""``poisonlab validate``: retrain on a poisoned set several times and measure the attack's success."""

from __future__ import annotations

import argparse
from pathlib import Path

from poisonlab._io import check_output, write_json
from poisonlab.cli.common import add_train_options, positive_int, status, train_config
from poisonlab.data import load_poisoned
from poisonlab.validation import describe_targets, validate_poisoned


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="retrain from scratch on a poisoned set; report attack success and accuracy",
                       description="Train RUNS fresh models (seeds SEED .. SEED+RUNS-1) on a poisoned .npz and "
                                   "write the targeted attack's success rate (targets classified as their "
                                   "adversarial class) and the clean test accuracy, mean and std over runs, with "
                                   "per-target results; for a backdoor attack (badnets, blend) the attack success "
                                   "rate (triggered test images of the attacked classes classified as the target) "
                                   "and the robust accuracy (those still classified correctly).")
    p.add_argument("--poisoned", type=Path, required=True, metavar="P.npz",
                   help="a poisoned dataset from 'poisonlab attack'")
    p.add_argument("--runs", type=positive_int, default=3, help="independent retrainings (default 3)")
    add_train_options(p)
    p.add_argument("--clean-control", action="store_true",
                   help="also retrain without the poisons: the base rate of targets landing in their "
                        "adversarial class (backdoors: of triggered images landing in the target class)")
    p.add_argument("--out", type=Path, required=True, metavar="V.json", help="where to write the results")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    check_output(args.out)
    poisoned = load_poisoned(args.poisoned)
    result = validate_poisoned(poisoned, runs=args.runs, config=train_config(args),
                               clean_control=args.clean_control, progress=not args.quiet)
    result["poisoned"] = str(args.poisoned)
    write_json(args.out, result)
    summary = f"clean accuracy {_pct(result['clean_accuracy'], result['clean_accuracy_std'], 2)}"
    if result.get("attack_success_rate") is not None:
        summary = (f"attack success rate {_pct(result['attack_success_rate'], result['attack_success_rate_std'], 1)}"
                   f", robust accuracy {_pct(result['robust_accuracy'], result['robust_accuracy_std'], 1)} over "
                   f"{result['n_triggered']} triggered test images x {args.runs} run(s); " + summary)
        if "control" in result:
            summary += f"; without poisons {100 * result['control']['attack_success_rate']:.1f}% in the target class"
    if result["success_rate"] is not None:
        summary = (f"attack success {_pct(result['success_rate'], result['success_rate_std'], 1)} "
                   f"over {len(result['targets'])} target(s) x {args.runs} run(s); " + summary)
        if "control" in result:
            summary += f"; without poisons {100 * result['control']['success_rate']:.1f}%"
    for line in describe_targets(result):
        status(line)
    if result.get("max_perturbation") is not None:
        status(f"largest pixel change of any poison: {result['max_perturbation']}/255")
    status(f"{summary}; wrote {args.out}")
    return 0


def _pct(value: float, std: float | None, digits: int) -> str:
    """``97.50%`` or, with a spread over several runs, ``97.50% ± 0.12``."""
    return f"{100 * value:.{digits}f}%" + ("" if std is None else f" ± {100 * std:.{digits}f}")
