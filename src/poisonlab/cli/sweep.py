"""``poisonlab sweep``: a grid of experiments on the local engine (worker processes) or on Ray."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO, Any

from tqdm.auto import tqdm

from poisonlab.cli.common import non_negative_int, positive_int, status
from poisonlab.cli.progress import BarProgress
from poisonlab.experiment.engines import ENGINES, check_engine_options, make_engine
from poisonlab.experiment.grid import load_sweep_spec
from poisonlab.experiment.runner import _clock
from poisonlab.experiment.sweep import check_sweep_dir, run_sweep
from poisonlab.report.sweep import render_sweep_report, sweep_summary_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a grid of experiments (attacks x parameters x defenses x seeds), locally or on Ray",
        description="Run every cell of SWEEP.toml (see examples/sweep-*.toml) under every seed into DIR: "
                    "sweep.csv (a row per cell and seed), sweep.json, report.md, report.html. Cells share "
                    "their trainings (one clean model per data, model, seed and budget; one attacked model per "
                    "attack configuration). --engine ray runs the trainings as Ray tasks, on this machine or "
                    "a cluster, with the same numbers.")
    p.add_argument("sweep", type=Path, metavar="SWEEP.toml")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="the sweep folder")
    p.add_argument("--engine", choices=ENGINES, default="local",
                   help="local: worker processes here (default); ray: Ray tasks (pip install \"poisonlab[ray]\")")
    p.add_argument("--address", metavar="ADDR",
                   help="with --engine ray: 'auto' or HEAD:6379 joins a running cluster (default: $RAY_ADDRESS, "
                        "else Ray starts on this machine)")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="threads of every training, on either engine (part of the numbers' recipe; default 1)")
    p.add_argument("--workers", type=non_negative_int, metavar="N",
                   help="local engine: training processes side by side (0: in this process; default: cores / threads)")
    r = p.add_mutually_exclusive_group()
    r.add_argument("--resume", action="store_true", help="reuse the finished stages in DIR (continue a sweep)")
    r.add_argument("--force", action="store_true", help="start over in a DIR that holds another sweep")
    p.add_argument("--no-report", action="store_true", help="write sweep.csv and sweep.json only")
    p.add_argument("--quiet", action="store_true", help="no progress bar or cell lines")
    p.set_defaults(func=_sweep)


class SweepProgress(BarProgress):
    """The sweep's progress: in a terminal one bar (cells done of all, trainings done of planned, time,
    ETA) with each cell's line printed above it; anywhere else a line per finished cell, which carries
    the same counts in brackets."""

    def __init__(self, *, quiet: bool = False, stream: IO[str] | None = None, terminal: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.terminal = (not quiet) and (self.stream.isatty() if terminal is None else terminal)
        self.bar: tqdm | None = None

    def log(self, message: str) -> None:
        if self.quiet:
            return
        line = f"poisonlab: {message}"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def update(self, state: dict[str, Any]) -> None:
        if not self.terminal:
            return
        if self.bar is None:
            self.bar = tqdm(total=state["cells_total"], desc="poisonlab sweep", file=self.stream, dynamic_ncols=True,
                            bar_format="{desc}: {n}/{total} cells |{bar}| {postfix}")
        eta = f", ETA {_clock(state['eta'])}" if state["eta"] is not None else ""
        failed = f", {state['failed']} failed" if state["failed"] else ""
        self.bar.set_postfix_str(f"trainings {state['trainings_done']}/{state['trainings_planned']}{failed}, "
                                 f"{_clock(state['elapsed'])}{eta}", refresh=False)
        self.bar.update(state["cells_done"] - self.bar.n)
        self.bar.refresh()



def _sweep(args: argparse.Namespace) -> int:
    spec = load_sweep_spec(args.sweep)
    check_engine_options(args.engine, address=args.address, workers=args.workers, threads=args.threads)
    check_sweep_dir(args.out, spec, resume=args.resume, force=args.force)  # before an engine starts
    with SweepProgress(quiet=args.quiet) as shown:
        try:
            with make_engine(args.engine, address=args.address, workers=args.workers, threads=args.threads) as engine:
                result = run_sweep(spec, args.out, engine=engine, resume=args.resume, force=args.force,
                                   log=shown.log, on_progress=shown.update)
        except KeyboardInterrupt:
            shown.close()
            status(f"stopped; the finished stages are kept in {args.out}: add --resume to continue")
            raise
    if not args.no_report:
        paths = render_sweep_report(args.out)
        shown.log(f"wrote {args.out / 'sweep.csv'}, {args.out / 'sweep.json'}, {paths['markdown']}, {paths['html']}")
    else:
        shown.log(f"wrote {args.out / 'sweep.csv'} and {args.out / 'sweep.json'}")
    print(sweep_summary_text(result))
    return 0


__all__ = ["SweepProgress", "register"]
