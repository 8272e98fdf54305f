"""Training stages: one that may still be running on an engine, one that has finished, and what runs that
share one store share while they run."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from torch import nn

from poisonlab.experiment.store import StageStore
from poisonlab.parallel import TrainOutcome
from poisonlab.training import TrainConfig, rebuild_model


@dataclass(frozen=True)
class StageEvent:
    """A stage about to start, as :func:`~poisonlab.experiment.run_experiment`'s ``before_stage`` hook sees it.

    ``stage`` is one of ``"clean"``, ``"attack"``, ``"attacked"``, ``"features"``, ``"detect"``,
    ``"retrain"``; ``attack`` is the attack's label and ``defense`` the defense's name, where they apply.
    """

    stage: str
    seed: int
    attack: str | None = None
    defense: str | None = None


class TrainedModel:
    """A finished training stage: its record, and its model and test predictions, read from the stage
    folder only when a later stage asks for them (a resumed run never loads what it does not need).

    Parameters
    ----------
    key : str
        The stage's key in ``store``.
    record : dict
        The stage's ``stage.json`` (test metrics, seconds, steps, threads, ...).
    store : StageStore
    train_config : TrainConfig
    num_classes : int
    image_shape : tuple of int (C, H, W)
    model : torch.nn.Module, optional
        The trained model when it is in memory already.
    test_predictions : np.ndarray (N_test,), optional
    activations : np.ndarray (N_train, D) float32, optional
        The penultimate activations of the training images, when the training job computed them (they
        are stored with the stage, so a stage read back from the store has the same ones).
    """

    def __init__(self, key: str, record: dict, store: StageStore, train_config: TrainConfig, num_classes: int,
                 image_shape: tuple[int, ...], *, model: nn.Module | None = None,
                 test_predictions: np.ndarray | None = None, activations: np.ndarray | None = None) -> None:
        self.key, self.record, self.store, self.train_config = key, record, store, train_config
        self.num_classes, self.image_shape = num_classes, image_shape
        self._activations = activations
        self._model = model
        self._predictions = test_predictions

    def model(self) -> nn.Module:
        if self._model is None:
            self._model = rebuild_model(self.train_config, self.image_shape, self.num_classes,
                                        self.store.weights_path("train", self.key))
        return self._model

    def test_predictions(self) -> np.ndarray | None:
        """The predicted class of every test image (None for a stage stored without them)."""
        if self._predictions is None:
            self._predictions = self._stored("test_predictions")
        return self._predictions

    def activations(self) -> np.ndarray | None:
        """The training job's penultimate activations of the training images (None: it computed none)."""
        if self._activations is None and "features_seconds" in self.record:
            self._activations = self._stored("activations")
        return self._activations

    def _stored(self, name: str) -> np.ndarray | None:
        try:
            with np.load(self.store.folder("train", self.key) / "arrays.npz", allow_pickle=False) as npz:
                return npz[name] if name in npz.files else None
        except (OSError, ValueError):
            return None


class PendingTrain:
    """A training stage: found in the store, or a job on an engine whose result is stored as soon as it is
    collected (:meth:`collect` does not wait, :meth:`wait` does; either may be called from any thread)."""

    def __init__(self, key: str, event: StageEvent, train_config: TrainConfig, num_classes: int,
                 image_shape: tuple[int, ...], store: StageStore, *, record: dict | None = None,
                 future: Future | None = None) -> None:
        self.key, self.event, self.train_config = key, event, train_config
        self.num_classes, self.image_shape, self.store = num_classes, image_shape, store
        self.cached = record is not None
        self.future = future
        self.finished_wall: float | None = None
        self.noted = False  # the runner notes a training in its timeline once, however many stages share it
        self._lock = threading.Lock()  # one collector stores the result, however many threads wait on it
        self._done = None if record is None else TrainedModel(key, record, store, train_config, num_classes,
                                                               image_shape)

    def collect(self) -> TrainedModel | None:
        """The finished stage, stored, if the job has ended well; ``None`` while it runs (or if it failed)."""
        if self._done is not None:
            return self._done
        if self.future is None or not self.future.done() or self.future.cancelled() \
                or self.future.exception() is not None:
            return None
        with self._lock:
            if self._done is None:
                self._done = self._store(self.future.result())
        return self._done

    def _store(self, outcome: TrainOutcome) -> TrainedModel:
        record = dict(outcome.record)
        arrays = {"test_predictions": outcome.test_predictions}
        if outcome.activations is not None:
            record["features_seconds"] = outcome.activations_seconds
            arrays["activations"] = np.ascontiguousarray(outcome.activations, dtype=np.float32)
        model = rebuild_model(self.train_config, self.image_shape, self.num_classes, outcome.state)
        self.store.save("train", self.key, record, model=model, arrays=arrays)
        self.finished_wall = outcome.finished_wall
        return TrainedModel(self.key, record, self.store, self.train_config, self.num_classes, self.image_shape,
                            model=model, test_predictions=outcome.test_predictions,
                            activations=arrays.get("activations"))

    def wait(self) -> TrainedModel:
        """The finished stage; raises the job's error if it failed."""
        if self._done is None and self.future is not None:
            self.future.result()
        done = self.collect()
        assert done is not None
        return done


@dataclass
class StageSharing:
    """What the runners of one store share while they run side by side in threads (the cells of a sweep):
    the trainings in flight by key, so that two cells needing the same training wait on one job, a lock
    per stage key, so that a stage two cells need is computed once, and which trainings were started
    here (``False``) or found in the store (``True``)."""

    inflight: dict[str, PendingTrain] = field(default_factory=dict)
    trainings: dict[str, bool] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _stage_locks: dict[str, threading.Lock] = field(default_factory=dict)

    def stage_lock(self, kind: str, key: str) -> threading.Lock:
        with self.lock:
            return self._stage_locks.setdefault(f"{kind}-{key}", threading.Lock())


__all__ = ["PendingTrain", "StageEvent", "StageSharing", "TrainedModel"]
