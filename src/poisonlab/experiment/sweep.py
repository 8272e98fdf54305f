"""``poisonlab sweep``: every cell of a grid (:mod:`poisonlab.experiment.grid`) under every seed, through the
staged runner, into one sweep folder.

Each (cell, seed) is :meth:`Runner.run_seed <poisonlab.experiment.runner.Runner.run_seed>` of the cell's
one-attack, one-defense experiment, in a thread of this driver process. They all share the folder's
content-addressed :class:`~poisonlab.experiment.store.StageStore` and the trainings in flight
(:class:`~poisonlab.experiment.jobs.StageSharing`), so the grid trains one clean model per (data, model,
seed, budget), one attacked model per attack configuration and seed, and one retraining per set of kept
samples; :func:`plan_trainings` counts that against the naive three trainings per cell and seed.
Trainings run on the engine (:mod:`poisonlab.experiment.engines`) as soon as their inputs exist; attacks,
features, detectors and the rebuilding of trained models run here, one at a time (the cores are the
engine's, and a stage that seeds torch's global generator must not share it with another). Every
training gets the engine's thread count, whatever its place in the schedule, so the numbers are the
same on every engine; an engine that trains in this process (``LocalEngine(workers=0)``) runs the
cells one after the other.

A cell that fails for a reason in its data (a detector that flags every sample) becomes a ``failed`` row
with its message and the others go on. Ctrl-C (or a ``before_stage`` hook that raises) stops the sweep,
keeping every finished stage; ``resume=True`` finishes it with the same numbers, on either engine.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from poisonlab import __version__
from poisonlab._io import check_output, write_json
from poisonlab.attacks import ATTACKS
from poisonlab.data import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.experiment.assemble import AttackRun
from poisonlab.experiment.engines import Engine
from poisonlab.experiment.grid import Cell, SweepSpec
from poisonlab.experiment.jobs import StageEvent, StageSharing
from poisonlab.experiment.runner import (Runner, _clock, _single_threaded_here, check_attacks_fit,
                                         load_experiment_dataset)
from poisonlab.experiment.store import StageStore, array_fingerprint, digest
from poisonlab.sweep_results import LISTS, METRICS, SECONDS, SWEEP_FORMAT, write_csv
from poisonlab.training import machine_info

SPEC_FILE = "sweep-spec.json"  # the sweep a folder holds, for --resume and for refusing another sweep
DETECTION = ("precision", "recall", "f1", "roc_auc", "removed", "poisons_removed", "clean_removed", "poisons_kept")

Log = Callable[[str], None]
ProgressHook = Callable[[dict[str, Any]], None]
StageHook = Callable[[StageEvent], None]


class SweepStopped(Exception):
    """Raised in a cell's thread at its next stage once the sweep is stopping."""


# ----------------------------------------------------------------------------------------------- plan

def _data_id(config: Any) -> tuple:
    return (config.dataset, config.data_dir, config.n_train, config.n_test, config.subset_seed)


def plan_trainings(spec: SweepSpec) -> dict[str, int]:
    """Trainings a sweep implies, without running it: ``naive`` (three per cell and seed: clean,
    attacked, retrained) and ``planned`` (distinct ones: a clean model per data, model, seed and budget,
    an attacked model per attack configuration and seed, a retraining per cell and seed). Two defenses
    that keep the same samples share a retraining, so a sweep may need fewer than ``planned``."""
    clean, attacked, retrained = set(), set(), set()
    for cell in spec.cells:
        c, (attack,) = cell.config, cell.config.attacks
        for seed in spec.seeds:
            data = json.dumps(_data_id(c))
            c_key = (data, json.dumps(c.train_config(epochs=c.clean_epochs, seed=seed).to_dict(), sort_keys=True))
            surrogate = c_key if ATTACKS[attack.name].uses_model else None
            a_key = (data, attack.name, json.dumps(dict(attack.params), sort_keys=True), seed, surrogate,
                     json.dumps(c.train_config(epochs=c.attacked_epochs, seed=seed).to_dict(), sort_keys=True))
            r_key = (a_key, c.defenses[0], json.dumps({k: dict(v) for k, v in c.defense_params.items()}, sort_keys=True),
                     c.features, c.retrain_budget,
                     json.dumps(c.train_config(epochs=c.retrain_epochs, seed=seed).to_dict(), sort_keys=True))
            clean.add(c_key)
            attacked.add(a_key)
            retrained.add(r_key)
    naive = 3 * len(spec.cells) * len(spec.seeds)
    return {"naive": naive, "planned": len(clean) + len(attacked) + len(retrained), "clean": len(clean),
            "attacked": len(attacked), "retrained": len(retrained)}


# ----------------------------------------------------------------------------------------------- folder

def check_sweep_dir(out: str | os.PathLike, spec: SweepSpec, *, resume: bool, force: bool) -> bool:
    """Refuse, writing nothing, a folder that cannot take this sweep; whether its old stages are to be
    discarded. Without ``resume`` a non-empty folder must hold the same sweep (or ``force`` is needed)."""
    out = check_output(out, folder=True)
    if not (out.exists() and any(out.iterdir())) or resume:
        return False
    held = _read_json(out / SPEC_FILE)
    if held != spec.to_dict() and not force:
        what = "a different sweep" if held is not None else "files that are not a poisonlab sweep"
        raise PoisonlabError(f"{out} holds {what}; use --resume to reuse its matching stages, --force to start "
                             "over, or another --out")
    return True


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _prepare(out: Path, spec: SweepSpec, *, resume: bool, force: bool) -> Path:
    if check_sweep_dir(out, spec, resume=resume, force=force):
        shutil.rmtree(out / "stages", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SPEC_FILE, spec.to_dict())
    return out


# ----------------------------------------------------------------------------------------------- cells

class _CellRunner(Runner):
    """A runner whose stages in this process are computed once however many cells need them (a lock per
    stage), one at a time across cells (``driver``, re-entrant: a stage may finish a training)."""

    def __init__(self, *args: Any, driver: threading.RLock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.driver = driver

    def finish(self, pending):  # type: ignore[override]
        if pending.future is not None:
            wait([pending.future])  # wait for the engine outside the driver; rebuild the model inside it
        with self.driver:
            return super().finish(pending)

    def harvest(self) -> None:
        with self.driver:
            super().harvest()

    def attack_stage(self, spec, ds, data_key, clean, seed):  # type: ignore[override]
        if ATTACKS[spec.name].uses_model:
            self.finish(clean)  # wait for the surrogate without holding a driver slot
        name = digest({"data": data_key, "attack": spec.name, "params": dict(spec.params), "seed": seed,
                       "surrogate": clean.key})
        with self.sharing.stage_lock("attack", name), self.driver:
            return super().attack_stage(spec, ds, data_key, clean, seed)

    def features_stage(self, poisoned, attacked, seed, attack):  # type: ignore[override]
        with self.sharing.stage_lock("features", attacked.key), self.driver:
            return super().features_stage(poisoned, attacked, seed, attack)

    def detect_stage(self, name, features, poisoned, seed, attack):  # type: ignore[override]
        with self.sharing.stage_lock("detect", f"{features.key}-{name}"), self.driver:
            return super().detect_stage(name, features, poisoned, seed, attack)


def cell_row(cell: Cell, seed: int, run: AttackRun | None, error: str | None = None) -> dict[str, Any]:
    """One row of ``sweep.csv`` (see :mod:`poisonlab.sweep_results`); a failed row when ``run`` is None."""
    row: dict[str, Any] = {"cell": cell.index, **cell.params, "seed": seed,
                           "status": "ok" if run is not None else "failed", "error": error,
                           **dict.fromkeys((*METRICS, *LISTS, *SECONDS))}
    if run is None:
        return row
    clean, attacked, defended = (run.scenarios[k] for k in ("clean", "attacked", cell.params["defense"]))
    row.update(accuracy=defended["accuracy"], accuracy_clean=clean["accuracy"], accuracy_attacked=attacked["accuracy"],
               accuracy_recovered=defended["accuracy"] - attacked["accuracy"],
               **{k: defended.get(k) for k in DETECTION}, n_poison=run.summary["n_poison"],
               n_train=defended["n_train"], target_success_rate=defended.get("target_success_rate"),
               attack_success_rate=defended.get("attack_success_rate"),
               attack_success_rate_clean=clean.get("attack_success_rate"),
               attack_success_rate_attacked=attacked.get("attack_success_rate"),
               robust_accuracy=defended.get("robust_accuracy"),
               per_class_accuracy=defended["per_class_accuracy"],
               per_class_accuracy_attacked=attacked["per_class_accuracy"],
               seconds_clean=clean["seconds"], seconds_attack=attacked["seconds_attack"],
               seconds_attacked=attacked["seconds_train"], seconds_features=defended["seconds_features"],
               seconds_detect=defended["seconds_detect"], seconds_retrain=defended["seconds_retrain"],
               seconds_defense=defended["seconds"])
    return row


class SweepRun:
    """The cells of one sweep in threads of this process, their trainings on ``engine`` (see the module
    docstring); :meth:`run` returns the rows."""

    def __init__(self, spec: SweepSpec, out: Path, store: StageStore, engine: Engine,
                 datasets: dict[tuple, tuple[Dataset, str]], *, plan: dict[str, int], log: Log,
                 on_progress: ProgressHook, before_stage: StageHook) -> None:
        self.spec, self.out, self.store, self.engine, self.datasets = spec, out, store, engine, datasets
        self.plan, self.log, self.on_progress, self.before_stage = plan, log, on_progress, before_stage
        self.sharing = StageSharing()
        self.stop = threading.Event()
        self.driver = threading.RLock()
        self.varying = spec.varying()
        self.started = time.time()
        self.cells_done = self.failed = 0

    def _hook(self, event: StageEvent) -> None:
        if self.stop.is_set():
            raise SweepStopped
        self.before_stage(event)

    def run_cell(self, cell: Cell, seed: int) -> dict[str, Any]:
        ds, data_key = self.datasets[_data_id(cell.config)]
        runner = _CellRunner(cell.config, self.out, self.store, self.engine, log=lambda line: None,
                             before_stage=self._hook, sharing=self.sharing, driver=self.driver)
        try:
            run = runner.run_seed(ds, data_key, seed)[cell.params["attack"]]
            return cell_row(cell, seed, run)
        except PoisonlabError as exc:  # a reason in the data: this cell fails, the others go on
            return cell_row(cell, seed, None, error=str(exc))
        finally:
            runner.harvest()

    def harvest(self) -> None:
        """Store every finished training now (an interrupted sweep keeps it for resume)."""
        with self.driver:
            for key, pending in list(self.sharing.inflight.items()):
                if pending.collect() is not None:
                    self.sharing.inflight.pop(key, None)

    def state(self) -> dict[str, Any]:
        """Where the sweep is: cell runs done and failed of all, trainings done of planned, time, ETA."""
        with self.sharing.lock:
            inflight = self.sharing.inflight
            done = sum(1 for k in self.sharing.trainings
                       if k not in inflight or inflight[k].future is None or inflight[k].future.done())
            reused = sum(self.sharing.trainings.values())
        elapsed = time.time() - self.started
        total = len(self.spec.cells) * len(self.spec.seeds)
        remaining = max(self.plan["planned"] - done, 0) if self.cells_done < total else 0
        ran = done - reused
        eta = elapsed * remaining / ran if ran > 0 and remaining else None
        return {"cells_done": self.cells_done, "cells_total": total, "failed": self.failed, "trainings_done": done,
                "trainings_planned": self.plan["planned"], "trainings_naive": self.plan["naive"],
                "elapsed": elapsed, "eta": eta}

    def _line(self, row: dict[str, Any], state: dict[str, Any]) -> str:
        cell = self.spec.cells[row["cell"]]
        where = f"cell {row['cell']} seed {row['seed']}: {cell.describe(self.varying)}"
        if row["status"] == "failed":
            what = f"failed: {row['error']}"
        else:
            f1 = "n/a" if row["f1"] is None else f"{row['f1']:.3f}"
            what = (f"accuracy {row['accuracy'] * 100:.2f}% (attacked {row['accuracy_attacked'] * 100:.2f}%, "
                    f"clean {row['accuracy_clean'] * 100:.2f}%), F1 {f1}")
        eta = f", ETA {_clock(state['eta'])}" if state["eta"] is not None else ""
        return (f"{where}: {what} [{state['cells_done']}/{state['cells_total']} cells, trainings "
                f"{state['trainings_done']}/{state['trainings_planned']}, {_clock(state['elapsed'])}{eta}]")

    def run(self) -> list[dict[str, Any]]:
        items = [(cell, seed) for seed in self.spec.seeds for cell in self.spec.cells]
        threads = 1 if getattr(self.engine, "in_process", False) else max(4, 3 * getattr(self.engine, "slots", 1))
        pool = ThreadPoolExecutor(max_workers=min(threads, len(items)), thread_name_prefix="poisonlab-cell")
        rows: list[dict[str, Any]] = []
        try:
            pending = {pool.submit(self.run_cell, cell, seed) for cell, seed in items}
            self.on_progress(self.state())
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    row = future.result()
                    rows.append(row)
                    self.cells_done += 1
                    self.failed += row["status"] == "failed"
                    state = self.state()
                    self.log(self._line(row, state))
                    self.on_progress(state)
                if not done:
                    self.on_progress(self.state())
        except BaseException:
            self.stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            self.harvest()
            self.engine.close(cancel=True)  # what is running now is recomputed on resume
            pool.shutdown(wait=True)
            self.harvest()
            raise
        pool.shutdown(wait=True)
        order = {s: i for i, s in enumerate(self.spec.seeds)}
        return sorted(rows, key=lambda r: (r["cell"], order[r["seed"]]))


# ----------------------------------------------------------------------------------------------- run

def run_sweep(spec: SweepSpec, out: str | os.PathLike, *, engine: Engine, resume: bool = False,
              force: bool = False, log: Log | None = None, on_progress: ProgressHook | None = None,
              before_stage: StageHook | None = None) -> dict[str, Any]:
    """Run (or resume) the sweep ``spec`` into ``out`` on ``engine``; write ``sweep.csv`` and ``sweep.json``
    (:mod:`poisonlab.sweep_results`) and return ``sweep.json``'s content.

    Parameters
    ----------
    spec : SweepSpec
        Checked when it was read (:func:`~poisonlab.experiment.grid.load_sweep_spec`).
    out : path
        The sweep folder: ``sweep-spec.json``, ``stages/``, ``sweep.csv``, ``sweep.json``.
    engine : Engine
        Where trainings run (:func:`~poisonlab.experiment.engines.make_engine`); the caller closes it.
    resume : bool
        Reuse every finished stage in ``out`` whose key matches.
    force : bool
        Start over in a folder that holds another sweep.
    log : callable, optional
        A line per finished cell and seed (and one as each dataset loads).
    on_progress : callable, optional
        Called with :meth:`SweepRun.state` (cells done, trainings done, ETA) as the sweep goes.
    before_stage : callable, optional
        Called with each cell's :class:`StageEvent` s, from the cells' threads (tests stop a sweep with it).
    """
    log = log or (lambda line: None)
    start = time.perf_counter()
    check_sweep_dir(out, spec, resume=resume, force=force)  # nothing is written before the data loads
    plan = plan_trainings(spec)
    with _single_threaded_here(1):
        datasets: dict[tuple, tuple[Dataset, str]] = {}
        for cell in spec.cells:
            key = _data_id(cell.config)
            if key not in datasets:
                ds = load_experiment_dataset(cell.config, log=log)
                datasets[key] = (ds, array_fingerprint(ds.x_train, ds.y_train, ds.x_test, ds.y_test))
            try:
                check_attacks_fit(cell.config, datasets[key][0])
            except PoisonlabError as exc:
                raise PoisonlabError(f"cell {cell.index} ({cell.describe()}): {exc}") from None
        out = _prepare(Path(out), spec, resume=resume, force=force)
        log(f"{len(spec.cells)} cells x {len(spec.seeds)} seeds on the {getattr(engine, 'name', 'given')} engine; "
            f"{plan['planned']} trainings planned against {plan['naive']} without sharing")
        sweep = SweepRun(spec, out, StageStore(out, reuse=resume), engine, datasets, plan=plan, log=log,
                         on_progress=on_progress or (lambda state: None),
                         before_stage=before_stage or (lambda event: None))
        rows = sweep.run()
    trainings = sweep.sharing.trainings
    describe = getattr(engine, "describe", None)
    result = {
        "format": SWEEP_FORMAT, "poisonlab_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "torch_version": torch.__version__,
        "machine": machine_info(), "engine": describe() if describe else {"engine": type(engine).__name__},
        "spec": spec.to_dict(), "columns": list(spec.columns), "seeds": list(spec.seeds),
        "cells": [{"cell": c.index, "params": c.params, "label": c.describe(sweep.varying)} for c in spec.cells],
        "rows": rows,
        "trainings": {"naive": plan["naive"], "planned": plan["planned"], "needed": len(trainings),
                      "ran": sum(not cached for cached in trainings.values()), "reused": sum(trainings.values())},
        "failed": sum(r["status"] == "failed" for r in rows),
        "timing": {"total_seconds": round(time.perf_counter() - start, 3)},
    }
    result = json.loads(json.dumps(result))
    write_csv(out / "sweep.csv", rows, spec.columns)
    write_json(out / "sweep.json", result)
    return result


__all__ = ["SPEC_FILE", "SweepRun", "SweepStopped", "cell_row", "check_sweep_dir",
           "plan_trainings", "run_sweep"]
