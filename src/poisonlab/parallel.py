"""Training jobs in worker processes: the experiment runner's way to use every core.

A CPU training step of the paper CNN does not scale to two threads (about 1.6x the one-thread speed at
batch 128 on the reference 2-core machine), while two one-thread trainings side by side use both cores
fully. :class:`TrainPool` runs whole trainings in ``workers`` spawned processes with ``threads`` threads
each; ``workers=0`` runs them in this process, one after the other, with all of its threads.

A job's result depends on its data, its :class:`~poisonlab.training.TrainConfig` and its thread count
(floating-point reductions split differently across threads), never on which worker ran it or when,
so a run gives the same numbers however its jobs interleave. Jobs and results travel between our own
processes through multiprocessing pipes; nothing is read from files here.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainJob:
    """One training and its evaluation on the test split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    config: Any  # TrainConfig
    label: str  # for progress lines, e.g. "[seed 0] retrain label-flip/pca"
    features: bool = False  # also return the trained model's penultimate activations of x_train
    threads: int | None = None  # threads for this job only (None: the worker's own count)


def auto_workers(cpu_count: int | None = None) -> int:
    """Worker processes for this machine: one per core up to 4, none (in-process) on one core."""
    cpus = cpu_count or os.cpu_count() or 1
    return 0 if cpus < 2 else min(cpus, 4)


def threads_per_worker(workers: int, cpu_count: int | None = None) -> int:
    """Threads of each worker: the cores shared out evenly (at least one)."""
    cpus = cpu_count or os.cpu_count() or 1
    return max(1, cpus // workers) if workers > 0 else 0


def run_job(job: TrainJob, progress: bool = False,
            bars: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray | None]:
    """Train and evaluate with ``job.threads`` threads (if set); return the test metrics (plus ``seconds``,
    ``epoch_losses``, ``n_train``, ``threads`` and the ``test_predictions`` array), the trained weights as
    NumPy arrays (a state dict) and, with ``job.features``, the activations of the training images
    (``features_seconds`` in the metrics). ``progress``: a line per epoch on stderr; ``bars``: tqdm bars
    instead (for a job in the terminal's own process)."""
    import torch  # noqa: PLC0415

    def on_epoch(epoch: int, epochs: int, loss: float, seconds: float) -> None:
        if progress and not bars:
            print(f"poisonlab: {job.label}: epoch {epoch}/{epochs}, loss {loss:.4f} ({seconds:.1f} s)",
                  file=sys.stderr, flush=True)

    own_threads = torch.get_num_threads()
    if job.threads:
        torch.set_num_threads(job.threads)
    try:
        return _train_and_measure(job, bars, on_epoch)
    finally:
        torch.set_num_threads(own_threads)


def _train_and_measure(job: TrainJob, bars: bool, on_epoch) -> tuple[dict[str, Any], dict[str, np.ndarray],
                                                                    np.ndarray | None]:
    import time  # noqa: PLC0415

    import torch  # noqa: PLC0415

    from poisonlab.training import extract_features, metrics_from_predictions, predict_logits, train  # noqa: PLC0415

    result = train(job.x_train, job.y_train, num_classes=job.num_classes, config=job.config, progress=bars,
                   desc=job.label.split("] ", 1)[-1], on_epoch=on_epoch)
    predictions = predict_logits(result.model, job.x_test, precision=job.config.resolved_precision()).argmax(axis=1)
    record = metrics_from_predictions(job.y_test, predictions, num_classes=job.num_classes)
    # every test prediction, for targeted attacks (is each target in its adversarial class?); the runner
    # stores it as an array, not in the JSON record
    record["test_predictions"] = predictions.astype(np.int16)
    record.update(seconds=round(result.seconds, 3), n_train=int(len(job.y_train)),
                  epochs=len(result.epoch_losses), steps=result.steps, threads=torch.get_num_threads(),
                  epoch_losses=[round(v, 5) for v in result.epoch_losses])
    features = None
    if job.features:
        start = time.perf_counter()
        features = extract_features(result.model, job.x_train, precision=job.config.resolved_precision())
        record["features_seconds"] = round(time.perf_counter() - start, 3)
    state = {k: v.detach().cpu().numpy() for k, v in result.model.state_dict().items()}
    record["finished_wall"] = time.time()  # for the run's timeline; the runner takes it out of the record
    return record, state, features


def keep_freed_memory() -> bool:
    """Make glibc's allocator keep freed memory for reuse instead of handing it back to the kernel.

    By default every allocation over a threshold (128 KiB, adapting up to 32 MiB) is its own ``mmap`` and
    goes back to the kernel when freed, so each training step's activations, each transferred array and
    each of scikit-learn's distance chunks is fresh memory that the kernel must fault in and zero page by
    page. In a whole ``reproduce`` run that came to about 11 million page faults and 32 s of system
    time. This turns ``mmap`` for allocations off and raises the trim threshold to 2 GiB: the heap
    keeps what it grew to (peak memory is unchanged, it is just not returned). It changes allocation,
    never results.

    Process-wide and irreversible, so only for processes poisonlab owns (the CLI, training workers).
    Returns False where it does not apply (not glibc).
    """
    import ctypes  # noqa: PLC0415

    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False


def _init_worker(threads: int) -> None:
    import torch  # noqa: PLC0415

    keep_freed_memory()
    torch.set_num_threads(threads)


def _warm_up() -> None:
    import poisonlab.training  # noqa: F401, PLC0415  (torch, the model, oneDNN's first kernels)


class TrainPool:
    """Runs :class:`TrainJob` s; ``submit`` returns a ``Future`` of :func:`run_job`'s result.

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
            # processes start on demand: start them now, so their imports overlap the caller's data loading
            for _ in range(workers):
                self._executor.submit(_warm_up)

    def job_threads(self, *, last: bool = False) -> int:
        """The thread count a job runs with (part of what decides its numbers). ``last``: the run's final
        job, which gets every core: nothing is queued behind it, so the other workers would sit idle
        while it trains alone (about 17 s of a 2-core ``reproduce``)."""
        if self._executor is not None:
            return max(self.threads, os.cpu_count() or 1) if last else self.threads
        import torch  # noqa: PLC0415

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
        if self._executor is not None:
            self._executor.shutdown(wait=not cancel, cancel_futures=cancel)
            self._executor = None

    def __enter__(self) -> "TrainPool":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)
