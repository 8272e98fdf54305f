"""The ``ray`` engine: every training is a Ray task running :func:`poisonlab.parallel.run_job`.

Imports Ray at its top, so it is loaded only by :func:`poisonlab.experiment.engines.make_engine` when the
``ray`` engine is asked for (Ray is the optional extra ``pip install "poisonlab[ray]"``).

- **Where**: without an address Ray starts on this machine (``ray.init()``, every core, no dashboard) and
  stops with the engine; ``address="auto"`` (or ``RAY_ADDRESS``) or ``HOST:PORT`` joins a cluster started
  the usual way (``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the others; every
  machine needs poisonlab installed).
- **Resources**: a task asks for ``threads`` CPUs, and for one GPU when its config's device resolves to
  CUDA here on the driver (the stage keys name that device, so the task runs on it).
- **Data**: arrays travel through Ray's object store: the arrays a dataset's jobs share (test split, the
  unfiltered training split) are put once and referenced by every task; results come back the same way.
  No task reads a file, so workers need no shared file system; the driver keeps the stage store.
- **Faults**: a task whose worker process dies (killed, out of memory, a node lost) is retried on a fresh
  worker up to ``MAX_RETRIES`` times; a task that raises is not retried (its error is deterministic).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import weakref
from concurrent.futures import Future
from typing import Any

import numpy as np
import ray

from poisonlab.errors import PoisonlabError
from poisonlab.parallel import TrainJob, TrainOutcome, run_job

MAX_RETRIES = 3
TASK_NAME = "poisonlab_training"  # a busy Ray worker's process title is "ray::poisonlab_training"
_EMPTY = np.zeros(0, dtype=np.uint8)


@ray.remote
def poisonlab_training(job: TrainJob, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                       y_test: np.ndarray) -> TrainOutcome:
    """One training on a Ray worker; Ray hands the arrays over from the object store (read-only views,
    which training copies where it must write)."""
    return run_job(dataclasses.replace(job, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test))


def task_error(error: BaseException) -> BaseException:
    """The exception a training's future carries for ``error``, the one its Ray task ended with.

    A :class:`PoisonlabError` raised inside the task comes back as itself (a cell with a reason in its
    data fails alone, as on the local engine); a failure of Ray itself (a worker that died more than
    ``MAX_RETRIES`` times, a lost node or object) becomes a one-line :class:`PoisonlabError` that says the
    finished stages are kept; any other error from the task (a bug) is left as it is, traceback and all.
    """
    if isinstance(error, ray.exceptions.RayTaskError):
        cause = getattr(error, "cause", None)
        return cause if isinstance(cause, PoisonlabError) else error
    if isinstance(error, ray.exceptions.RayError):
        first = (str(error).strip().splitlines() or [""])[0]
        return PoisonlabError(f"Ray lost a training after {MAX_RETRIES} retries ({type(error).__name__}: {first}); "
                              "finished stages are kept, rerun with --resume")
    return error


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse at once a ``HOST:PORT`` nothing listens on (``ray.init`` would retry for a minute)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise PoisonlabError(f"Ray address {address!r} is not HOST:PORT or 'auto'")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise PoisonlabError(f"cannot reach a Ray cluster at {address}: {exc.strerror or exc}") from None


class RayEngine:
    """Trainings as Ray tasks (see the module docstring).

    Parameters
    ----------
    address : str or None
        ``None``: ``RAY_ADDRESS`` if set, else start Ray here; ``"auto"``: the cluster this machine is part
        of; ``HOST:PORT``: that cluster's head. A Ray already initialised in this process is used as it is.
    threads : int
        Threads (and CPUs asked for) of every training.
    """

    name = "ray"

    def __init__(self, address: str | None = None, *, threads: int = 1) -> None:
        self.threads = threads
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self._started = False
        if not ray.is_initialized():
            self._connect()
        cpus = int(ray.cluster_resources().get("CPU", 0))
        if cpus < threads:
            self.close()
            raise PoisonlabError(f"the Ray cluster has {cpus} CPUs; a training asks for {threads}")
        self.slots = max(1, cpus // threads)
        self._shared: dict[int, tuple[weakref.ref, Any]] = {}  # id(array) -> (the array, its object ref)
        self._running: dict[Any, Future] = {}  # object ref -> the future handed out for it
        self._lock = threading.Lock()
        self._closed = False

    def _connect(self) -> None:
        if self.address not in (None, "auto") and not self.address.startswith("ray://"):
            _reachable(self.address)
        try:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            where = f"at {self.address}" if self.address else "on this machine"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise PoisonlabError(f"cannot start or reach Ray {where}: {first}") from None
        self._started = self.address is None

    def job_threads(self, *, last: bool = False) -> int:
        return self.threads

    def _ref(self, array: np.ndarray) -> Any:
        """The object ref of ``array``, put once while the array lives (jobs share the dataset's arrays)."""
        key = id(array)
        with self._lock:
            held = self._shared.get(key)
            if held is not None and held[0]() is array:
                return held[1]
            ref = ray.put(array)
            self._shared[key] = (weakref.ref(array), ref)
            weakref.finalize(array, self._shared.pop, key, None)  # an array gone frees its copy in the store
            return ref

    def submit(self, job: TrainJob) -> Future:
        if self._closed:
            raise RuntimeError("the engine is closed")
        device = job.config.resolved_device()
        config = dataclasses.replace(job.config, device=device)
        shell = dataclasses.replace(job, x_train=_EMPTY, y_train=_EMPTY, x_test=_EMPTY, y_test=_EMPTY, config=config,
                                    threads=self.threads)
        task = poisonlab_training.options(num_cpus=self.threads, num_gpus=1 if device == "cuda" else 0,
                                          max_retries=MAX_RETRIES, retry_exceptions=False)
        ref = task.remote(shell, *(self._ref(a) for a in (job.x_train, job.y_train, job.x_test, job.y_test)))
        # our own future, which close() can end even when Ray, stopped, never answers for the task
        future: Future = Future()
        with self._lock:
            self._running[ref] = future
        ref.future().add_done_callback(lambda done: self._done(ref, done))
        return future

    def _done(self, ref: Any, done: Future) -> None:
        with self._lock:
            future = self._running.pop(ref, None)
        if future is None or future.done():
            return
        error = done.exception() if not done.cancelled() else RuntimeError("the Ray task was cancelled")
        if error is None:
            future.set_result(done.result())
        else:
            future.set_exception(task_error(error))

    def close(self, *, cancel: bool = False) -> None:
        """Drop the object refs (and with ``cancel`` the tasks still running); stop Ray if it was started here."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        if cancel:
            with self._lock:
                running, self._running = dict(self._running), {}
            for ref, future in running.items():
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - a task that has just finished cannot be cancelled
                    pass
                if not future.done():
                    future.set_exception(RuntimeError("the sweep stopped before this training finished"))
        if hasattr(self, "_shared"):
            self._shared.clear()
        if self._started:
            ray.shutdown()

    def describe(self) -> dict[str, Any]:
        resources = ray.cluster_resources()
        return {"engine": self.name, "address": self.address or "local", "threads_per_training": self.threads,
                "slots": self.slots, "cluster_cpus": int(resources.get("CPU", 0)),
                "cluster_gpus": int(resources.get("GPU", 0)), "nodes": len(ray.nodes()),
                "ray_version": ray.__version__}

    def __enter__(self) -> "RayEngine":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)


__all__ = ["MAX_RETRIES", "RayEngine", "TASK_NAME", "poisonlab_training"]
