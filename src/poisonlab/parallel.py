"""Training jobs in worker processes: the experiment runner's way to use every core.

A CPU training step of the paper CNN scales poorly to two threads, while two one-thread trainings side by
side use both cores fully (docs/measurements.md). :class:`TrainPool` runs whole trainings in ``workers``
spawned processes with ``threads`` threads each; ``workers=0`` runs them in this process, one after the
other, with all of its threads.

A job's result depends on its data, its :class:`~poisonlab.training.TrainConfig` and its thread count
(floating-point reductions split differently across threads), never on which worker ran it or when,
so a run gives the same numbers however its jobs interleave. Jobs and results travel between our own
processes through multiprocessing pipes; nothing is read from files here.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from poisonlab.training import (TrainConfig, epoch_steps, extract_features, metrics_from_predictions,
                                predict_logits, train)


@dataclass(frozen=True)
class TrainJob:
    """One training and its evaluation on the test split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    config: TrainConfig
    label: str  # for progress lines, e.g. "[seed 0] retrain label-flip/pca"
    activations: bool = False  # also return the trained model's penultimate activations of x_train
    threads: int | None = None  # threads for this job only (None: the worker's own count)


@dataclass(frozen=True, eq=False)
class TrainOutcome:
    """What one :class:`TrainJob` gives back.

    Attributes
    ----------
    record : dict
        The test metrics of :func:`~poisonlab.training.metrics_from_predictions` plus ``seconds``,
        ``n_train``, ``epochs``, ``steps``, ``threads``, ``epoch_losses`` (JSON-able: a stage's record).
    state : dict of str to np.ndarray
        The trained weights (a state dict).
    test_predictions : np.ndarray (N_test,) int16
        The predicted class of every test image (targeted attacks ask about single test images).
    activations : np.ndarray (N_train, D) float32 or None
        The penultimate activations of the training images, with ``TrainJob.activations``.
    activations_seconds : float or None
        Their extraction time.
    finished_wall : float
        ``time.time()`` when the job ended, for the run's timeline.
    """

    record: dict[str, Any]
    state: dict[str, np.ndarray]
    test_predictions: np.ndarray
    activations: np.ndarray | None
    activations_seconds: float | None
    finished_wall: float


def auto_workers(cpu_count: int | None = None) -> int:
    """Worker processes for this machine: one per core up to 4, none (in-process) on one core."""
    cpus = cpu_count or os.cpu_count() or 1
    return 0 if cpus < 2 else min(cpus, 4)


def threads_per_worker(workers: int, cpu_count: int | None = None) -> int:
    """Threads of each worker: the cores shared out evenly (at least one)."""
    cpus = cpu_count or os.cpu_count() or 1
    return max(1, cpus // workers) if workers > 0 else 0


def run_job(job: TrainJob, progress: bool = False, bars: bool = False) -> TrainOutcome:
    """Train and evaluate with ``job.threads`` threads (if set). ``progress``: a line per epoch on stderr;
    ``bars``: tqdm bars instead (for a job in the terminal's own process)."""
    total = job.config.steps
    per_pass = epoch_steps(len(job.y_train), job.config.batch_size)

    def on_epoch(epoch: int, epochs: int, loss: float, seconds: float) -> None:
        if progress and not bars:
            # a step budget (a retraining matched to the attacked model's steps) is counted in steps
            done = f"steps {min(epoch * per_pass, total)}/{total}" if total is not None else f"epoch {epoch}/{epochs}"
            print(f"poisonlab: {job.label}: {done}, loss {loss:.4f} ({seconds:.1f} s)", file=sys.stderr, flush=True)

    own_threads = torch.get_num_threads()
    if job.threads:
        torch.set_num_threads(job.threads)
    try:
        return _train_and_measure(job, bars, on_epoch)
    finally:
        torch.set_num_threads(own_threads)


def _train_and_measure(job: TrainJob, bars: bool, on_epoch: Callable[[int, int, float, float], None]) -> TrainOutcome:
    result = train(job.x_train, job.y_train, num_classes=job.num_classes, config=job.config, progress=bars,
                   desc=job.label.split("] ", 1)[-1], on_epoch=on_epoch)
    precision = job.config.resolved_precision()
    predictions = predict_logits(result.model, job.x_test, precision=precision,
                                 tta=job.config.resolved_tta(job.x_train.shape[1])).argmax(axis=1)
    record = metrics_from_predictions(job.y_test, predictions, num_classes=job.num_classes)
    record.update(seconds=round(result.seconds, 3), n_train=int(len(job.y_train)),
                  epochs=len(result.epoch_losses), steps=result.steps, threads=torch.get_num_threads(),
                  epoch_losses=[round(v, 5) for v in result.epoch_losses])
    activations = activations_seconds = None
    if job.activations:
        start = time.perf_counter()
        activations = extract_features(result.model, job.x_train, precision=precision)
        activations_seconds = round(time.perf_counter() - start, 3)
    state = {k: v.detach().cpu().numpy() for k, v in result.model.state_dict().items()}
    return TrainOutcome(record=record, state=state, test_predictions=predictions.astype(np.int16),
                        activations=activations, activations_seconds=activations_seconds,
                        finished_wall=time.time())


def keep_freed_memory() -> bool:
    """Make glibc's allocator keep freed memory for reuse instead of handing it back to the kernel.

    By default every allocation over a threshold (128 KiB, adapting up to 32 MiB) is its own ``mmap`` and
    goes back to the kernel when freed, so each training step's activations, each transferred array and
    each of scikit-learn's distance chunks is fresh memory that the kernel must fault in and zero page by
    page (what that costs a ``reproduce`` run: docs/measurements.md). This turns ``mmap`` for allocations
    off and raises the trim threshold to 2 GiB: the heap keeps what it grew to (peak memory is unchanged,
    it is just not returned). It changes allocation,
    never results.

    Process-wide and irreversible, so only for processes poisonlab owns (the CLI, training workers).
    Returns False where it does not apply (not glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def _init_worker(threads: int) -> None:
    # Ctrl-C reaches the whole process group: the parent stops the run and ends the workers itself,
    # instead of every worker printing a KeyboardInterrupt traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm would make a cross-process semaphore here, which a worker ended mid-job leaves behind (a
    # "leaked semaphore" warning at exit); workers print plain lines, a thread lock is all they need
    tqdm.set_lock(threading.RLock())
    keep_freed_memory()
    torch.set_num_threads(threads)


def _warm_up() -> None:
    """A first job that makes a spawned worker import this module (torch, the model) before real work."""


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while processes are spawned (they keep the disposition); a no-op off the main thread."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals are not ours to change
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class TrainPool:
    """Runs :class:`TrainJob` s; ``submit`` returns a ``Future`` of a :class:`TrainOutcome`.

    Parameters
    ----------
    workers : int
        Processes (spawned, so nothing of this process's thread pools is inherited); 0 runs each job
        in this process when it is submitted.
    threads : int
        Threads per worker (ignored with ``workers=0``).
    progress : bool
        Workers print a line per finished epoch to stderr.
    """

    def __init__(self, workers: int, threads: int = 1, *, progress: bool = False) -> None:
        self.workers = workers
        self.threads = threads
        self.progress = progress
        self._executor: ProcessPoolExecutor | None = None
        if workers > 0:
            self._executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_init_worker, initargs=(threads,))
            # processes start on demand: start them now, so their imports overlap the caller's data loading;
            # they inherit an ignored SIGINT, so a Ctrl-C while they start is the parent's alone to handle
            with _sigint_ignored():
                for _ in range(workers):
                    self._executor.submit(_warm_up)

    def job_threads(self, *, last: bool = False) -> int:
        """The thread count a job runs with (part of what decides its numbers). ``last``: the run's final
        job, which gets every core: nothing is queued behind it, so the other workers would sit idle
        while it trains alone."""
        if self._executor is not None:
            return max(self.threads, os.cpu_count() or 1) if last else self.threads
        return torch.get_num_threads()

    def submit(self, job: TrainJob) -> Future:
        if self._executor is not None:
            return self._executor.submit(run_job, job, self.progress)
        future: Future = Future()
        try:
            future.set_result(run_job(job, self.progress, bars=self.progress))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            future.set_exception(exc)
        return future

    def close(self, *, cancel: bool = False) -> None:
        """Wait for the jobs, or with ``cancel`` drop the queued ones and end the running ones now (a
        stopped run: what finished is stored already, the rest is recomputed on ``--resume``)."""
        if self._executor is not None:
            if cancel:
                # the executor has no public way to stop a running job; its worker processes are ours
                for process in list(getattr(self._executor, "_processes", {}).values()):
                    process.terminate()
            self._executor.shutdown(wait=True, cancel_futures=cancel)
            self._executor = None

    def __enter__(self) -> "TrainPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)
