"""``poisonlab reproduce``, ``poisonlab run`` and ``poisonlab report``: the experiment runner's commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from poisonlab._io import check_output
from poisonlab.cli.common import positive_int, status
from poisonlab.cli.progress import StageProgress
from poisonlab.errors import PoisonlabError
from poisonlab.experiment import QUICK_SETTINGS, ExperimentConfig, load_config, run_experiment
from poisonlab.models import MODEL_NAMES
from poisonlab.report import render_report, summary_text
from poisonlab.report.sweep import render_sweep_report
from poisonlab.training import DEVICES, PRECISIONS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce", help="reproduce the paper end to end: train, attack, defend, retrain, report",
        description="Run the paper's experiment (MNIST, the paper CNN, label flipping and FGSM, defenses pca, "
                    "kmeans, pca+kmeans, dbscan, birch) into OUT: results.json, report.md, report.html, plots/.")
    _add_run_options(p)
    p.set_defaults(func=_reproduce)

    p = sub.add_parser("run", help="run an experiment described by a TOML config",
                       description="Run the experiment in CONFIG.toml (keys as in poisonlab.experiment."
                                   "ExperimentConfig; see examples/*.toml) into OUT. Flags override the file.")
    p.add_argument("config", type=Path, metavar="CONFIG.toml")
    _add_run_options(p)
    p.set_defaults(func=_run_config)

    p = sub.add_parser("report", help="re-render a run folder's report from its results.json (no training)",
                       description="Write DIR/report.md, DIR/report.html and DIR/plots/ from DIR/results.json "
                                   "(or, in a sweep folder, from DIR/sweep.json).")
    p.add_argument("run_dir", type=Path, metavar="DIR")
    p.set_defaults(func=_report)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="the run folder")
    p.add_argument("--seeds", type=positive_int, metavar="N", help="repeat with seeds 0..N-1; report mean and std")
    p.add_argument("--quick", action="store_true",
                   help="a stratified 6,000 / 1,000 slice and 1 epoch per training (tests, demos)")
    p.add_argument("--dataset", metavar="NAME", help="mnist, fashion-mnist, digits, cifar10, an .npz path or an image folder")
    p.add_argument("--subset", type=positive_int, nargs=2, metavar=("N_TRAIN", "N_TEST"),
                   help="a class-stratified slice of the dataset")
    p.add_argument("--defenses", metavar="A,B,...", help="comma-separated defense names")
    g = p.add_argument_group("epochs per stage (reproduce and --quick: 1 each)")
    g.add_argument("--clean-epochs", type=positive_int, metavar="N", help="the model trained on clean data")
    g.add_argument("--attacked-epochs", type=positive_int, metavar="N", help="the model trained on poisoned data")
    g.add_argument("--retrain-epochs", type=positive_int, metavar="N", help="each defense's retraining")
    g.add_argument("--epochs", type=positive_int, metavar="N", help="all three at once")
    p.add_argument("--model", choices=MODEL_NAMES, help="the network of every training (default paper-cnn)")
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--device", choices=DEVICES, help="auto (CUDA when a GPU is present, the default), cpu, cuda")
    p.add_argument("--workers", type=int, metavar="N",
                   help="training processes side by side (0: all in this process; default: one per core, up to 4)")
    r = p.add_mutually_exclusive_group()
    r.add_argument("--resume", action="store_true", help="reuse the finished stages in OUT (continue a run)")
    r.add_argument("--force", action="store_true", help="start over in an OUT that holds another experiment")
    p.add_argument("--no-report", action="store_true", help="write results.json only")
    p.add_argument("--quiet", action="store_true", help="no progress bars or stage lines")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.quick:
        changes.update(QUICK_SETTINGS)
    if args.dataset:
        changes["dataset"] = args.dataset
    if args.subset:
        changes.update(n_train=args.subset[0], n_test=args.subset[1])
    if args.seeds:
        changes["seeds"] = list(range(args.seeds))
    if args.defenses is not None:
        changes["defenses"] = [d.strip() for d in args.defenses.split(",") if d.strip()]
    if args.epochs:
        changes.update(clean_epochs=args.epochs, attacked_epochs=args.epochs, retrain_epochs=args.epochs)
    for key in ("clean_epochs", "attacked_epochs", "retrain_epochs", "precision", "device", "model"):
        if getattr(args, key):
            changes[key] = getattr(args, key)
    if args.workers is not None:
        changes["workers"] = args.workers
    return changes


def _execute(config: ExperimentConfig, args: argparse.Namespace) -> int:
    try:
        with StageProgress(quiet=args.quiet) as shown:
            log = shown.log
            results = run_experiment(config, args.out, resume=args.resume, force=args.force,
                                     progress=shown.epoch_lines, log=log, on_progress=shown.update)
    except KeyboardInterrupt:
        status(f"stopped; the finished stages are kept in {args.out}: add --resume to continue")
        raise
    if not args.no_report:
        paths = render_report(args.out)
        log(f"wrote {args.out / 'results.json'}, {paths['markdown']}, {paths['html']}")
    else:
        log(f"wrote {args.out / 'results.json'}")
    print(summary_text(results))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    changes = _overrides(args)
    config = ExperimentConfig().replace(**changes) if changes else ExperimentConfig()
    return _execute(config, args)


def _run_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    changes = _overrides(args)
    if changes:
        config = config.replace(**changes)
    return _execute(config, args)


def _report(args: argparse.Namespace) -> int:
    if not args.run_dir.is_dir():
        raise PoisonlabError(f"{args.run_dir}: no such run folder")
    check_output(args.run_dir, folder=True)
    is_sweep = (args.run_dir / "sweep.json").is_file() and not (args.run_dir / "results.json").exists()
    paths = render_sweep_report(args.run_dir) if is_sweep else render_report(args.run_dir)
    status(f"wrote {paths['markdown']} and {paths['html']}")
    return 0
