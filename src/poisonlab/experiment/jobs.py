"""Training stages: one that may still be running on the pool, and one that has finished."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

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
        The penultimate activations of the training images, when the training job computed them.
    """

    def __init__(self, key: str, record: dict, store: StageStore, train_config: TrainConfig, num_classes: int,
                 image_shape: tuple[int, ...], *, model: nn.Module | None = None,
                 test_predictions: np.ndarray | None = None, activations: np.ndarray | None = None) -> None:
        self.key, self.record, self.store, self.train_config = key, record, store, train_config
        self.num_classes, self.image_shape = num_classes, image_shape
        self.activations = activations
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
            try:
                with np.load(self.store.folder("train", self.key) / "arrays.npz", allow_pickle=False) as npz:
                    self._predictions = npz["test_predictions"] if "test_predictions" in npz.files else None
            except (OSError, ValueError):
                return None
        return self._predictions


class PendingTrain:
    """A training stage: found in the store, or a job on the pool whose result is stored as soon as it is
    collected (:meth:`collect` does not wait, :meth:`wait` does)."""

    def __init__(self, key: str, event: StageEvent, train_config: TrainConfig, num_classes: int,
                 image_shape: tuple[int, ...], store: StageStore, *, record: dict | None = None,
                 future: Future | None = None) -> None:
        self.key, self.event, self.train_config = key, event, train_config
        self.num_classes, self.image_shape, self.store = num_classes, image_shape, store
        self.cached = record is not None
        self.future = future
        self.finished_wall: float | None = None
        self.noted = False  # the runner notes a training in its timeline once, however many stages share it
        self._done = None if record is None else TrainedModel(key, record, store, train_config, num_classes,
                                                               image_shape)

    def collect(self) -> TrainedModel | None:
        """The finished stage, stored, if the job has ended well; ``None`` while it runs (or if it failed)."""
        if self._done is not None:
            return self._done
        if self.future is None or not self.future.done() or self.future.cancelled() \
                or self.future.exception() is not None:
            return None
        outcome: TrainOutcome = self.future.result()
        record = dict(outcome.record)
        if outcome.activations_seconds is not None:
            record["features_seconds"] = outcome.activations_seconds
        model = rebuild_model(self.train_config, self.image_shape, self.num_classes, outcome.state)
        self.store.save("train", self.key, record, model=model, arrays={"test_predictions": outcome.test_predictions})
        self.finished_wall = outcome.finished_wall
        self._done = TrainedModel(self.key, record, self.store, self.train_config, self.num_classes,
                                  self.image_shape, model=model, test_predictions=outcome.test_predictions,
                                  activations=outcome.activations)
        return self._done

    def wait(self) -> TrainedModel:
        """The finished stage; raises the job's error if it failed."""
        if self._done is None and self.future is not None:
            self.future.result()
        done = self.collect()
        assert done is not None
        return done


__all__ = ["PendingTrain", "StageEvent", "TrainedModel"]
