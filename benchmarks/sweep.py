"""Sweep engines: one sweep on the local engine (the reference) and on Ray on this machine, in one run.

Each engine gets a fresh folder and the same thread count per training. Measured per engine: the start of
the engine (Ray: ``ray.init()`` on this machine), the sweep itself, and the whole (start, sweep, stop);
the trainings run against the naive count (three per cell and seed) and the grid's plan. Then the ratio
Ray / local of the whole and of the sweep alone (Ray's overhead on one machine; the target is at most
1.10), and whether the two ``sweep.csv`` tables hold identical numbers (every column but the seconds).
The datasets are loaded (and cached) once before either engine is timed.

    python benchmarks/sweep.py --quick      # examples/sweep-quick.toml: digits, 8 rows, a minute or two
    python benchmarks/sweep.py              # examples/sweep-rates.toml: all of MNIST, 84 rows (long: see README)

Options: ``--sweep FILE`` (another sweep), ``--out DIR`` (keep the folders and ``benchmark.json`` there),
``--threads N`` (per training, default 1), ``--order local,ray`` (which engine runs first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from poisonlab.experiment import load_experiment_dataset
from poisonlab.experiment.engines import make_engine
from poisonlab.experiment.grid import load_sweep_spec
from poisonlab.experiment.sweep import plan_trainings, run_sweep
from poisonlab.sweep_results import numbers_of

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def time_engine(name: str, spec, out: Path, *, threads: int) -> dict:
    """One sweep on engine ``name`` into the fresh folder ``out``: seconds and the trainings it ran."""
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    engine = make_engine(name, threads=threads)
    started = time.perf_counter()
    try:
        result = run_sweep(spec, out, engine=engine,
                           log=lambda line: print(f"  [{name}] {line}", file=sys.stderr, flush=True))
    finally:
        swept = time.perf_counter()
        engine.close()
    stopped = time.perf_counter()
    return {"engine": name, "start_s": started - start, "sweep_s": swept - started, "total_s": stopped - start,
            "trainings": result["trainings"], "failed": result["failed"], "rows": result["rows"],
            "describe": result["engine"], "load_before": load_before, "load_after": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the quick sweep on digits (examples/sweep-quick.toml)")
    ap.add_argument("--sweep", type=Path, help="a sweep file (default: examples/sweep-rates.toml)")
    ap.add_argument("--out", type=Path, help="keep the sweep folders and benchmark.json here")
    ap.add_argument("--threads", type=int, default=1, help="threads per training, on both engines")
    ap.add_argument("--order", default="local,ray", help="engines in the order they run")
    args = ap.parse_args()
    path = args.sweep or EXAMPLES / ("sweep-quick.toml" if args.quick else "sweep-rates.toml")
    spec = load_sweep_spec(path)
    plan = plan_trainings(spec)
    engines = [e.strip() for e in args.order.split(",") if e.strip()]
    print(f"{path.name}: {len(spec.cells)} cells x {len(spec.seeds)} seeds = {len(spec.cells) * len(spec.seeds)} "
          f"rows; trainings planned {plan['planned']} (clean {plan['clean']}, attacked {plan['attacked']}, "
          f"retrained {plan['retrained']}) against {plan['naive']} naive; {os.cpu_count()} cores, "
          f"{args.threads} thread(s) per training")
    seen = set()
    for cell in spec.cells:  # load (and cache) every dataset before anything is timed
        key = (cell.config.dataset, cell.config.data_dir, cell.config.n_train, cell.config.n_test)
        if key not in seen:
            seen.add(key)
            load_experiment_dataset(cell.config)
    root = args.out or Path(tempfile.mkdtemp(prefix="poisonlab-sweep-bench-"))
    runs = {}
    try:
        for name in engines:
            out = root / name
            shutil.rmtree(out, ignore_errors=True)
            print(f"running the {name} engine into {out} ...", flush=True)
            runs[name] = time_engine(name, spec, out, threads=args.threads)
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n{'engine':<7} {'start s':>8} {'sweep s':>9} {'total s':>9} {'ran':>5} {'needed':>7} {'naive':>6} "
          f"{'failed':>7}  load avg before/after")
    for name, r in runs.items():
        t = r["trainings"]
        print(f"{name:<7} {r['start_s']:8.1f} {r['sweep_s']:9.1f} {r['total_s']:9.1f} {t['ran']:5d} {t['needed']:7d} "
              f"{t['naive']:6d} {r['failed']:7d}  {r['load_before']:.2f} / {r['load_after']:.2f}")
    summary = {"sweep": str(path), "plan": plan, "threads": args.threads, "cpu_count": os.cpu_count(),
               "runs": {n: {k: v for k, v in r.items() if k != "rows"} for n, r in runs.items()}}
    if {"local", "ray"} <= set(runs):
        local, ray = runs["local"], runs["ray"]
        same = numbers_of(local["rows"]) == numbers_of(ray["rows"])
        ratio, sweep_ratio = ray["total_s"] / local["total_s"], ray["sweep_s"] / local["sweep_s"]
        print(f"\nray / local: {ratio:.3f} whole ({(ratio - 1) * 100:+.1f}%), {sweep_ratio:.3f} sweep alone "
              f"({(sweep_ratio - 1) * 100:+.1f}%); target <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'}")
        print(f"identical sweep.csv numbers on both engines: {same}")
        summary.update(ratio_total=ratio, ratio_sweep=sweep_ratio, identical_numbers=same)
    if args.out is not None:
        (args.out / "benchmark.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.out / 'benchmark.json'}")


if __name__ == "__main__":
    main()
