"""The staged pipeline of one experiment run, once per seed::

    clean train -> for each attack: attack -> attacked train -> activations of the attacked model
               -> for each defense: detect -> filter (poisoned.keep(~flagged)) -> retrain -> evaluate

Trainings run as jobs on an engine (:mod:`poisonlab.experiment.engines`: a
:class:`poisonlab.parallel.TrainPool` of worker processes here, Ray tasks in a sweep) as soon as their
inputs exist: the clean model and the attacked model of an attack that needs no surrogate start together,
detectors run in this process while other trainings go on, and the retrainings fill the workers. The
run's last training, which nothing is queued behind, gets every core. A training's numbers depend on
its inputs and thread count only, so the schedule never changes a result. Each retraining gets the
attacked model's number of optimizer steps by default (``retrain_budget="steps"``).

Every stage's result is kept in a :class:`~poisonlab.experiment.store.StageStore` under the run folder,
keyed by a hash of the stage's config and its inputs' keys: a run resumed with ``resume=True`` loads
what was done and computes the rest, with the same results, and two defenses that flag the same samples
share one retraining.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

from poisonlab import __version__
from poisonlab._io import save_npz, write_json
from poisonlab.attacks import ATTACKS, BackdoorRecord, TargetedRecord, make_attack
from poisonlab.data import Dataset, PoisonedDataset, load_dataset
from poisonlab.defenses import compute_features, detect_poisons, json_params, seeded_detector
from poisonlab.errors import PoisonlabError, PoisonlabWarning
from poisonlab.experiment.assemble import (DETECTION_KEYS, AttackRun, assemble_results, scenario_row,
                                           target_outcome)
from poisonlab.experiment.backdoor import backdoor_outcome
from poisonlab.experiment.config import AttackSpec, ExperimentConfig, paper_attacks
from poisonlab.experiment.engines import Engine
from poisonlab.experiment.jobs import PendingTrain, StageEvent, StageSharing, TrainedModel
from poisonlab.experiment.rundir import check_run_dir, prepare_run_dir
from poisonlab.experiment.store import StageStore, array_fingerprint, digest
from poisonlab.parallel import TrainJob, TrainPool, threads_per_worker
from poisonlab.results import Results, slug
from poisonlab.seeding import stream
from poisonlab.training import epoch_steps

Log = Callable[[str], None]
StageHook = Callable[[StageEvent], None]
ProgressHook = Callable[[int, int], None]  # (stages done, stages in all)


@dataclass
class Attacked:
    """One attack under one seed: the poisoned set, its stage key and record, and (once submitted) the
    model trained on it."""

    spec: AttackSpec
    poisoned: PoisonedDataset
    key: str
    record: dict[str, Any]  # "attack" (the attack's own record), "n_poison", "seconds", "images_changed"
    training: PendingTrain | None = None


@dataclass
class FeatureSpace:
    """The detectors' features of one poisoned set, computed once and shared by every defense."""

    key: str
    record: dict[str, Any]  # "seconds", "info", and "train" (the training stage holding them) or not
    store: StageStore
    _array: np.ndarray | None = field(default=None, repr=False)

    def array(self) -> np.ndarray:
        if self._array is None:
            if "train" in self.record:  # the attacked model's training job computed and stored them
                self._array = self.store.arrays("train", self.record["train"])["activations"]
            else:
                self._array = self.store.arrays("features", self.key)["features"]
        return self._array


@dataclass
class Defended:
    """One defense of one attacked set: what it flagged, how well, and the retraining on what it kept."""

    flagged: np.ndarray
    detection: dict[str, Any]
    retraining: PendingTrain


class Runner:
    """Runs the stages of one experiment into one run folder (see the module docstring).

    ``before_stage`` is called with a :class:`StageEvent` before each stage starts; an exception it raises
    stops the run as an error or Ctrl-C at that point would (finished stages are kept for ``--resume``).
    ``sharing``: the in-flight trainings shared with other runners of the same store (a sweep's cells).
    """

    def __init__(self, config: ExperimentConfig, out: Path, store: StageStore, pool: Engine, *, log: Log,
                 before_stage: StageHook | None = None, on_progress: ProgressHook | None = None,
                 sharing: StageSharing | None = None) -> None:
        self.config, self.out, self.store, self.pool, self.log = config, out, store, pool, log
        self.before_stage = before_stage or (lambda event: None)
        self.on_progress = on_progress or (lambda done, total: None)
        self.timeline: list[dict[str, Any]] = []
        self.done: set[tuple[str, int, str | None, str | None]] = set()  # stages finished, for the progress
        per_attack = 2 + bool(config.defenses or config.projection_samples) + 2 * len(config.defenses)
        self.total = len(config.seeds) * (1 + len(config.attacks) * per_attack)
        self.started = time.time()
        self.sharing = sharing or StageSharing()
        self._inflight = self.sharing.inflight

    # -- bookkeeping
    def harvest(self) -> None:
        """Store every finished training now, so an interrupted run keeps it for ``--resume``."""
        for key, pending in list(self._inflight.items()):
            if pending.collect() is not None:
                self._inflight.pop(key, None)

    def finish(self, pending: PendingTrain) -> TrainedModel:
        """Wait for a training stage, store it and note it in the timeline (once)."""
        model = pending.wait()
        self._inflight.pop(pending.key, None)
        if not pending.noted:
            pending.noted = True
            e = pending.event
            self._note(e.stage, model.record["seconds"], pending.cached, seed=e.seed, attack=e.attack,
                       defense=e.defense, detail=f"accuracy {model.record['accuracy'] * 100:.2f}%",
                       finished=pending.finished_wall)
        return model

    def _note(self, stage: str, seconds: float, cached: bool, *, seed: int, attack: str | None = None,
              defense: str | None = None, detail: str = "", finished: float | None = None) -> None:
        """One timeline entry; ``finished_at`` is seconds since the run started (wall clock), when the
        stage ended (a training in a worker) or was noted here."""
        end = (finished if finished is not None and not cached else time.time()) - self.started
        self.timeline.append({"stage": stage, "attack": attack, "defense": defense, "seed": seed,
                              "seconds": round(float(seconds), 3), "cached": cached,
                              "finished_at": round(end, 2)})
        label = f"{stage} {'/'.join(p for p in (attack, defense) if p)}".strip()
        state = "cached" if cached else f"{seconds:.1f} s"
        self._mark(stage, seed, attack, defense)
        self.log(f"[seed {seed}] {label}: {detail}{' ' if detail else ''}({state}) {self.progress()}")

    def _mark(self, stage: str, seed: int, attack: str | None, defense: str | None) -> None:
        self.done.add((stage, seed, attack, defense))
        self.on_progress(min(len(self.done), self.total), self.total)

    def progress(self) -> str:
        """``[5/13 stages, 1m20s, ETA 2m10s]``: stages done of all, wall time so far, a linear estimate."""
        elapsed = time.time() - self.started
        done = min(len(self.done), self.total)
        eta = f", ETA {_clock(elapsed * (self.total - done) / done)}" if 0 < done < self.total else ""
        return f"[{done}/{self.total} stages, {_clock(elapsed)}{eta}]"

    # -- stages
    def train_stage(self, event: StageEvent, ds: Dataset, data_key: str, *, keep: np.ndarray | None, epochs: int,
                    steps: int | None = None, activations: bool = False, last: bool = False) -> PendingTrain:
        """Train on ``ds``'s training split (rows where ``keep``), evaluate on its test split: a stored
        result at once, else a job on the pool. ``steps`` (total optimizer steps) overrides ``epochs``;
        ``last`` marks the run's final training (it may take every core: see ``TrainPool.job_threads``)."""
        self.before_stage(event)
        n_kept = len(ds.y_train) if keep is None else int(np.count_nonzero(keep))
        if steps is not None and steps == epochs * epoch_steps(n_kept, self.config.batch_size):
            steps = None  # the same training as ``epochs`` passes: one key, so identical work is shared
        config = self.config.train_config(epochs=epochs, seed=event.seed, steps=steps)
        keep_key = None if keep is None or keep.all() else array_fingerprint(np.packbits(keep))
        threads = self.pool.job_threads(last=last)
        key = digest({"stage": "train", "data": data_key, "keep": keep_key, "train": config.to_dict(),
                      "device": config.resolved_device(), "threads": threads, "version": __version__})
        shape = tuple(ds.x_train.shape[1:])
        with self.sharing.lock:
            if key in self._inflight:  # the same training already queued (e.g. two defenses removed the same)
                return self._inflight[key]
            record = self.store.load("train", key)
            if record is not None:
                self.sharing.trainings.setdefault(key, True)
                return PendingTrain(key, event, config, ds.num_classes, shape, self.store, record=record)
            x, y = (ds.x_train, ds.y_train) if keep is None else (ds.x_train[keep], ds.y_train[keep])
            label = f"[seed {event.seed}] {event.stage} {'/'.join(p for p in (event.attack, event.defense) if p)}"
            future = self.pool.submit(TrainJob(x, y, ds.x_test, ds.y_test, ds.num_classes, config, label.strip(),
                                               activations=activations, threads=threads))
            pending = PendingTrain(key, event, config, ds.num_classes, shape, self.store, future=future)
            self._inflight[key] = pending
            self.sharing.trainings[key] = False
            return pending

    def attack_stage(self, spec: AttackSpec, ds: Dataset, data_key: str, clean: PendingTrain, seed: int) -> Attacked:
        """Poison ``ds``'s training split; the clean model is the surrogate of attacks that use one (only
        those wait for it)."""
        self.before_stage(StageEvent("attack", seed, spec.label))
        key = digest({"stage": "attack", "data": data_key, "attack": spec.name, "params": dict(spec.params),
                      "seed": seed, "surrogate": clean.key, "threads": torch.get_num_threads(),
                      "version": __version__})
        record = self.store.load("attack", key)
        cached = record is not None
        if record is None:
            attack = make_attack(spec.name, **spec.params)
            surrogate = self.finish(clean).model() if attack.uses_model else None  # waiting is not attack time
            start = time.perf_counter()
            poisoned = attack.poison(ds, seed=seed, model=surrogate,
                                     log=lambda line: self.log(f"[seed {seed}] {line}"))
            seconds = time.perf_counter() - start
            arrays = {"y_train": poisoned.y_train, "is_poison": poisoned.is_poison}
            if not np.array_equal(poisoned.x_train, ds.x_train):
                arrays["x_train"] = poisoned.x_train
            record = {"attack": poisoned.attack, "n_poison": poisoned.n_poison, "seconds": round(seconds, 3),
                      "images_changed": "x_train" in arrays}
            self.store.save("attack", key, record, arrays=arrays)
        else:
            arrays = self.store.arrays("attack", key)
            poisoned = PoisonedDataset(
                name=ds.name, x_train=arrays.get("x_train", ds.x_train), y_train=arrays["y_train"],
                x_test=ds.x_test, y_test=ds.y_test, classes=ds.classes, is_poison=arrays["is_poison"],
                original_labels=ds.y_train.copy(), attack=record["attack"])
        self._note("attack", record["seconds"], cached, seed=seed, attack=spec.label,
                   detail=f"{record['n_poison']} of {len(ds.y_train)} training samples poisoned")
        return Attacked(spec, poisoned, key, record)

    def features_stage(self, poisoned: PoisonedDataset, attacked: TrainedModel, seed: int,
                       attack: str) -> FeatureSpace:
        """Features of the poisoned training set, computed once and shared by every defense."""
        self.before_stage(StageEvent("features", seed, attack))
        kind = self.config.features
        key = digest({"stage": "features", "kind": kind, "model": attacked.key if kind == "activations" else None,
                      "data": array_fingerprint(poisoned.x_train), "seed": seed, "threads": torch.get_num_threads(),
                      "version": __version__})
        record = self.store.load("features", key)
        cached = record is not None
        X = attacked.activations() if record is None and kind == "activations" else None
        if X is not None:
            # computed by the training job itself, right after training, and stored with it
            info = {"features": kind, "dim": int(X.shape[1]), "seconds": attacked.record["features_seconds"],
                    "trained_here": False, "model_seed": attacked.train_config.seed,
                    "precision": attacked.train_config.resolved_precision(), "computed_with_training": True}
            record = {"seconds": info["seconds"], "info": info, "train": attacked.key}
            self.store.save("features", key, record)
        if record is None:
            X, info = compute_features(kind, poisoned.x_train, poisoned.y_train, num_classes=poisoned.num_classes,
                                       model=attacked.model() if kind == "activations" else None, seed=seed,
                                       precision=attacked.train_config.resolved_precision())
            record = {"seconds": round(float(info["seconds"]), 3), "info": info}
            self.store.save("features", key, record, arrays={"features": X})
        self._note("features", record["seconds"], cached, seed=seed, attack=attack,
                   detail=f"{kind} {record['info'].get('dim', '')}-d")
        return FeatureSpace(key, record, self.store, X)

    def detect_stage(self, name: str, features: FeatureSpace, poisoned: PoisonedDataset, seed: int,
                     attack: str) -> tuple[np.ndarray, dict[str, Any]]:
        """Fit one detector on the shared features; the flagged mask and the detection metrics."""
        self.before_stage(StageEvent("detect", seed, attack, name))
        detector = seeded_detector(name, self.config.defense_params.get(name, {}), seed)
        key = digest({"stage": "detect", "features": features.key, "defense": name,
                      "params": json_params(detector.get_params(deep=False)),
                      "labels": array_fingerprint(poisoned.y_train), "version": __version__})
        record = self.store.load("detect", key)
        cached = record is not None
        if record is None:
            result = detect_poisons(detector, features.array(), poisoned)
            flagged = result.flagged
            record = {k: result.metrics[k] for k in (*DETECTION_KEYS, "threshold", "contamination", "params")}
            record["seconds"] = result.metrics["seconds_detect"]
            # JSON has no infinity: a threshold that flags nothing is stored as null
            record["threshold"] = record["threshold"] if np.isfinite(record["threshold"]) else None
            self.store.save("detect", key, record, arrays={"flagged": flagged,
                                                           "scores": result.scores.astype(np.float32)})
        else:
            flagged = self.store.arrays("detect", key)["flagged"].astype(bool)
        f1 = "n/a" if record["f1"] is None else f"{record['f1']:.3f}"
        self._note("detect", record["seconds"], cached, seed=seed, attack=attack, defense=name,
                   detail=f"removed {record['removed']} ({record['poisons_removed']} poisons), F1 {f1}")
        return flagged, record

    def projection(self, attack: str, seed: int, features: FeatureSpace, poisoned: PoisonedDataset,
                   flagged: dict[str, np.ndarray]) -> str | None:
        """PCA-2 of the features of a fixed random sample of training points, saved next to results.json."""
        n = min(self.config.projection_samples, len(poisoned.y_train))
        if n < 2:
            return None
        # its own stream: default_rng(seed) would repeat the attack's draw of the poisons (all of them poisons)
        index = np.sort(stream(seed, "projection").choice(len(poisoned.y_train), size=n, replace=False))
        X = features.array()
        xy = PCA(n_components=2, random_state=seed).fit(X).transform(X[index]).astype(np.float32)
        names = list(flagged)
        rel = f"projections/{slug(attack)}-seed{seed}.npz"
        save_npz(self.out / rel, xy=xy, index=index.astype(np.int64), labels=poisoned.y_train[index],
                 is_poison=poisoned.is_poison[index], defenses=np.asarray(names, dtype=str),
                 flagged=np.stack([flagged[d][index] for d in names]) if names else np.zeros((0, n), dtype=bool))
        return rel

    # -- the pipeline for one seed
    def run_seed(self, ds: Dataset, data_key: str, seed: int, *, last: bool = False) -> dict[str, AttackRun]:
        """Every stage of one seed. Trainings go to the pool as soon as their inputs exist: the clean model
        and the models of attacks without a surrogate (label flipping) first, side by side; each attacked
        model's defenses detect in this process while other trainings run; the retrainings last.
        ``last``: this is the run's final seed (its final retraining is the run's last job)."""
        c = self.config
        clean = self.train_stage(StageEvent("clean", seed), ds, data_key, keep=None, epochs=c.clean_epochs)
        attacked: dict[str, Attacked] = {}
        # attacks that need no surrogate start before the clean model is done
        for spec in sorted(c.attacks, key=lambda spec: bool(ATTACKS[spec.name].uses_model)):
            run = attacked[spec.label] = self.attack_stage(spec, ds, data_key, clean, seed)
            run.training = self.train_stage(StageEvent("attacked", seed, spec.label), run.poisoned, run.key,
                                            keep=None, epochs=c.attacked_epochs,
                                            activations=c.features == "activations" and bool(c.defenses))
        clean_row = scenario_row(self.finish(clean).record)
        defended: dict[str, dict[str, Defended]] = {}
        spaces: dict[str, FeatureSpace] = {}
        for spec in c.attacks:
            run = attacked[spec.label]
            assert run.training is not None
            model = self.finish(run.training)
            defended[spec.label] = {}
            if not (c.defenses or c.projection_samples):
                continue
            spaces[spec.label] = features = self.features_stage(run.poisoned, model, seed, spec.label)
            # "steps": every retraining gets the attacked model's number of optimizer steps
            steps = None
            if c.retrain_budget == "steps":
                steps = c.retrain_epochs * epoch_steps(len(run.poisoned.y_train), c.batch_size)
            for name in c.defenses:
                final = last and spec is c.attacks[-1] and name == c.defenses[-1]
                flagged, detection = self.detect_stage(name, features, run.poisoned, seed, spec.label)
                self.harvest()
                if flagged.all():
                    raise PoisonlabError(f"defense {name!r} flagged every training sample under attack {spec.label!r}")
                retraining = self.train_stage(StageEvent("retrain", seed, spec.label, name), run.poisoned, run.key,
                                              keep=~flagged, epochs=c.retrain_epochs, steps=steps, last=final)
                defended[spec.label][name] = Defended(flagged, detection, retraining)
        return {spec.label: self._attack_run(attacked[spec.label], clean, clean_row, defended[spec.label],
                                             spaces.get(spec.label), ds, seed) for spec in c.attacks}

    def _attack_run(self, run: Attacked, clean: PendingTrain, clean_row: dict[str, Any],
                    defended: dict[str, Defended], features: FeatureSpace | None, ds: Dataset,
                    seed: int) -> AttackRun:
        """One attack's rows for one seed, once its retrainings are done."""
        assert run.training is not None
        models = {"clean": self.finish(clean), "attacked": self.finish(run.training)}
        scenarios = {"clean": dict(clean_row),  # a copy: target metrics differ by attack
                     "attacked": scenario_row(models["attacked"].record, seconds_attack=run.record["seconds"])}
        for name, d in defended.items():
            models[name] = self.finish(d.retraining)
            self._mark("retrain", seed, run.spec.label, name)  # also when it shared another's training
            scenarios[name] = scenario_row(models[name].record, features_seconds=features.record["seconds"],
                                           detection=d.detection)
        targeted = TargetedRecord.from_attack(run.record["attack"], required=ATTACKS[run.spec.name].targeted)
        targets = target_outcome(targeted, models, scenarios, ds.y_test)
        backdoor = BackdoorRecord.from_attack(run.record["attack"], required=ATTACKS[run.spec.name].backdoor)
        if backdoor is not None:  # ASR of every model, the clean one's being the trigger's base rate
            lock = self.sharing.stage_lock("backdoor", run.key)
            info = backdoor_outcome(backdoor, models, scenarios, ds, self.store, lock=lock)
            rates = {n: s["attack_success_rate"] for n, s in scenarios.items()}
            self.log(f"[seed {seed}] backdoor {run.spec.label}: attack success "
                     + ", ".join(f"{n} {'n/a' if r is None else f'{100 * r:.1f}%'}" for n, r in rates.items()))
        flagged = {name: d.flagged for name, d in defended.items()}
        projection = (self.projection(run.spec.label, seed, features, run.poisoned, flagged)
                      if self.config.projection_samples and features is not None else None)
        summary = {"name": run.spec.name, "params": dict(run.spec.params), "record": run.record["attack"],
                   "n_poison": run.record["n_poison"], "rate_of_train": run.record["n_poison"] / len(ds.y_train)}
        if backdoor is not None:
            summary["backdoor"] = info
        return AttackRun(summary=summary, scenarios=scenarios, projection=projection, targets=targets)


# ----------------------------------------------------------------------------------------------- run

def check_attacks_fit(config: ExperimentConfig, ds: Dataset) -> None:
    """Refuse, before any training, an attack whose parameters cannot work on ``ds`` (a class index the
    data does not have, a rate that poisons nothing), saying where the attack came from."""
    defaults = paper_attacks()
    for i, spec in enumerate(config.attacks):
        try:
            make_attack(spec.name, **spec.params).check_dataset(ds)
        except PoisonlabError as exc:
            origin = " (the paper's preset, which 'reproduce' runs unless a config says otherwise)" \
                if spec in defaults else ""
            params = ", ".join(f"{k}={v}" for k, v in spec.params.items()) or "defaults"
            raise PoisonlabError(f"'attacks[{i}]' {spec.label} ({params}){origin} does not fit {ds.name} "
                                 f"({ds.num_classes} classes, {len(ds.y_train)} training samples): {exc}; choose "
                                 "attacks for this data in a config file ('poisonlab run CONFIG.toml', see "
                                 "examples/)") from None


def load_experiment_dataset(config: ExperimentConfig, *, log: Log | None = None) -> Dataset:
    """The config's dataset, sliced to ``n_train`` / ``n_test`` when they are set."""
    ds = load_dataset(config.dataset, data_dir=config.data_dir, progress=log)
    if config.n_train is not None or config.n_test is not None:
        ds = ds.subset(config.n_train, config.n_test, seed=config.subset_seed)
    return ds


def run_experiment(config: ExperimentConfig, out: str | os.PathLike, *, resume: bool = False, force: bool = False,
                   progress: bool = True, log: Log | None = None, before_stage: StageHook | None = None,
                   on_progress: ProgressHook | None = None) -> Results:
    """Run (or resume) ``config`` in the run folder ``out``; write and return ``results.json``'s content.

    Parameters
    ----------
    config : ExperimentConfig
        Checked when it was made; nothing here can fail on a setting.
    out : path
        The run folder: ``config.json``, ``stages/``, ``projections/``, ``results.json``.
    resume : bool
        Reuse every finished stage whose key matches (an interrupted run continues where it stopped).
    force : bool
        Start over in a folder that holds another experiment.
    progress : bool
        Progress lines per training epoch.
    log : callable, optional
        Receives one line per stage (default: nothing).
    before_stage : callable, optional
        Called with a :class:`StageEvent` before each stage starts (progress displays, tests that stop a
        run at a chosen stage).
    on_progress : callable, optional
        Called with (stages done, stages in all) whenever a stage finishes (an overall progress bar).
    """
    log = log or (lambda message: None)
    start = time.perf_counter()
    check_run_dir(out, config, resume=resume, force=force)  # nothing is written before the data loads
    workers = config.resolved_workers()
    if workers > (os.cpu_count() or 1):
        warnings.warn(f"{workers} training workers on {os.cpu_count()} cores share the cores: slower than one "
                      "per core, and the numbers follow the thread layout", PoisonlabWarning, stacklevel=2)
    with _single_threaded_here(workers), TrainPool(workers, threads_per_worker(workers), progress=progress) as pool:
        # the workers start (spawn, import torch) while the data loads
        ds = load_experiment_dataset(config, log=log)
        check_attacks_fit(config, ds)
        out = prepare_run_dir(out, config, resume=resume, force=force, log=log)
        data_key = array_fingerprint(ds.x_train, ds.y_train, ds.x_test, ds.y_test)
        runner = Runner(config, out, StageStore(out, reuse=resume), pool, log=log, before_stage=before_stage,
                        on_progress=on_progress)
        log(f"{ds.name}: {len(ds.y_train)} train / {len(ds.y_test)} test samples; seeds {list(config.seeds)}; "
            f"attacks {[a.label for a in config.attacks]}; defenses {list(config.defenses)}; "
            + (f"{workers} training workers x {pool.threads} thread(s)" if workers else "training in this process"))
        try:
            per_seed = {seed: runner.run_seed(ds, data_key, seed, last=seed == config.seeds[-1])
                        for seed in config.seeds}
        finally:
            runner.harvest()  # an error or Ctrl-C keeps what finished
    results = assemble_results(config, ds, per_seed, runner.timeline, total_seconds=time.perf_counter() - start)
    write_json(out / "results.json", results)
    return results


@contextlib.contextmanager
def _single_threaded_here(workers: int) -> Iterator[None]:
    """With training workers, which hold the cores, this process's attacks, features and detectors (torch,
    BLAS and scikit-learn's OpenMP) take one thread instead of oversubscribing them with spinning threads."""
    threads = torch.get_num_threads()
    try:
        if workers:
            torch.set_num_threads(1)
            with threadpool_limits(limits=1):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(threads)


def _clock(seconds: float) -> str:
    """``45s``, ``3m05s`` or ``1h02m``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


__all__ = ["Runner", "check_attacks_fit", "load_experiment_dataset", "run_experiment"]
