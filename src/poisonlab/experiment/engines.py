"""Engines: where an experiment's trainings run. The runner hands an engine :class:`~poisonlab.parallel.TrainJob`
s and gets back ``Future`` s of :class:`~poisonlab.parallel.TrainOutcome` s; everything else (attacks,
features, detectors, the stage store) stays in the driver process.

- ``local`` (the default, nothing to start): a :class:`~poisonlab.parallel.TrainPool` of worker processes
  on this machine.
- ``ray`` (the optional extra ``pip install "poisonlab[ray]"``): the same :func:`~poisonlab.parallel.run_job`
  as Ray tasks, on this machine or a cluster (:mod:`poisonlab.experiment.ray_engine`).

A job's result depends on its data, its :class:`~poisonlab.training.TrainConfig` (device included) and its
thread count only. Both engines give every job of a sweep the same ``threads``, never "all cores for the
last job", so a sweep gives the same numbers on either engine, in any schedule.

Ray is imported only when the ``ray`` engine is asked for: :func:`make_engine` loads
:mod:`~poisonlab.experiment.ray_engine` by name, the one module import in poisonlab that is not at the top of
a module (tests/test_layers.py allows exactly this one), so that every other command starts without Ray and
works where it is not installed.
"""

from __future__ import annotations

import importlib
import os
from concurrent.futures import Future
from typing import Any, Protocol

from poisonlab.errors import PoisonlabError
from poisonlab.parallel import TrainJob, TrainPool

ENGINES: tuple[str, ...] = ("local", "ray")
RAY_ENGINE_MODULE = "poisonlab.experiment.ray_engine"


class Engine(Protocol):
    """What the runner needs from an engine (a :class:`~poisonlab.parallel.TrainPool` is one too)."""

    def job_threads(self, *, last: bool = False) -> int:
        """The thread count of the next job (part of what decides its numbers)."""

    def submit(self, job: TrainJob) -> Future:
        """Start ``job``; a ``Future`` of its :class:`~poisonlab.parallel.TrainOutcome`."""

    def close(self, *, cancel: bool = False) -> None:
        """Wait for the jobs, or with ``cancel`` drop them now; calling it twice is harmless."""


class LocalEngine:
    """Trainings in ``workers`` spawned processes of ``threads`` threads each (``workers=0``: in this
    process, one after the other).

    Parameters
    ----------
    workers : int or None
        Processes side by side; ``None``: as many as the cores hold at ``threads`` each (at least one).
    threads : int
        Threads of every training, whatever its place in the schedule.
    progress : bool
        Workers print a line per epoch.
    """

    name = "local"

    def __init__(self, workers: int | None = None, threads: int = 1, *, progress: bool = False) -> None:
        if threads < 1:
            raise PoisonlabError(f"threads per training must be >= 1, got {threads}")
        if workers is not None and workers < 0:
            raise PoisonlabError(f"workers must be >= 0, got {workers}")
        self.threads = threads
        self.workers = max(1, (os.cpu_count() or 1) // threads) if workers is None else workers
        self.slots = max(1, self.workers)
        self.in_process = self.workers == 0  # trainings share this process (and torch's global generator)
        self._pool: TrainPool | None = TrainPool(self.workers, threads, progress=progress)

    def job_threads(self, *, last: bool = False) -> int:
        return self.threads

    def submit(self, job: TrainJob) -> Future:
        if self._pool is None:
            raise RuntimeError("the engine is closed")
        return self._pool.submit(job)

    def close(self, *, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.close(cancel=cancel)
            self._pool = None

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "workers": self.workers, "threads_per_training": self.threads,
                "slots": self.slots, "cpu_count": os.cpu_count()}

    def __enter__(self) -> "LocalEngine":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)


def check_engine_options(name: str, *, address: str | None = None, workers: int | None = None,
                         threads: int = 1) -> None:
    """Refuse, before any work, an unknown engine or options that do not belong to it."""
    if name not in ENGINES:
        raise PoisonlabError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
    if address is not None and name != "ray":
        raise PoisonlabError("--address joins a Ray cluster: it needs --engine ray")
    if workers is not None and name != "local":
        raise PoisonlabError("--workers sets the local engine's processes; Ray schedules its tasks itself")
    if threads < 1:
        raise PoisonlabError(f"threads per training must be >= 1, got {threads}")


def make_engine(name: str = "local", *, address: str | None = None, workers: int | None = None, threads: int = 1,
                progress: bool = False) -> Any:
    """An engine by name, started (the ``ray`` engine connects to its cluster here, so an unreachable
    address fails before anything is written). See :class:`LocalEngine` and
    :class:`poisonlab.experiment.ray_engine.RayEngine` for the options."""
    check_engine_options(name, address=address, workers=workers, threads=threads)
    if name == "local":
        return LocalEngine(workers, threads, progress=progress)
    try:
        module = importlib.import_module(RAY_ENGINE_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == "ray" or exc.name.startswith("ray.")):
            raise PoisonlabError("the ray engine needs Ray: pip install \"poisonlab[ray]\"") from None
        raise
    return module.RayEngine(address=address, threads=threads)


__all__ = ["ENGINES", "Engine", "LocalEngine", "check_engine_options", "make_engine"]
