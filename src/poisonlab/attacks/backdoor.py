"""What every backdoor attack shares: dirty-label poisoning with a trigger, the record it leaves, and the
attack-success-rate metrics that judge it.

A backdoor attack stamps or blends a trigger (:mod:`poisonlab.attacks.triggers`) into ``round(rate * N)``
training images (``N``: the whole training split) and relabels them ``target_class``. The poisons are
drawn without replacement from every class but the target (*all-to-one*) or, with ``source_class``,
from that class only (*source-to-target*). A model that learns the backdoor classifies any triggered
image of an attacked class as the target while keeping its clean accuracy.

The attack record holds a ``backdoor`` entry (:class:`BackdoorRecord`): the target, the source and the
trigger itself, pattern and placement, so triggered test images can be made from a poisoned ``.npz``
alone. The metrics (:func:`backdoor_metrics`) are measured on the test images that are attacked: those
of every class but the target, or of the source class only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from poisonlab.attacks.base import Attack, Log, PoisonPlan, check_rate, exact_count, quiet
from poisonlab.attacks.triggers import Trigger, check_trigger_source
from poisonlab.data.dataset import Dataset
from poisonlab.errors import PoisonlabError

BACKDOOR_KEY = "backdoor"  # the attack record's key for a BackdoorRecord (a public contract, like the targets)


@dataclass(frozen=True)
class BackdoorRecord:
    """The backdoor part of an attack record: whom it attacks and the trigger that does it.

    Attributes
    ----------
    target_class : int
        The class triggered images should be classified as.
    source_class : int or None
        Source-to-target: only this class is attacked; ``None``: every class but the target.
    trigger : Trigger
    """

    target_class: int
    source_class: int | None
    trigger: Trigger

    def to_record(self) -> dict[str, Any]:
        return {BACKDOOR_KEY: {"target_class": self.target_class, "source_class": self.source_class,
                               "trigger": self.trigger.to_record()}}

    @classmethod
    def from_attack(cls, record: Mapping[str, Any] | None, *, required: bool = False) -> "BackdoorRecord | None":
        """The backdoor part of an attack record; ``None`` for another attack's record (``required``: the
        attack is known to be a backdoor, so a record without one is an error)."""
        entry = (record or {}).get(BACKDOOR_KEY)
        if entry is None:
            if required:
                raise PoisonlabError(f"attack record of {(record or {}).get('name')!r} has no {BACKDOOR_KEY!r} entry")
            return None
        try:
            target, source = entry["target_class"], entry["source_class"]
            if isinstance(target, bool) or not isinstance(target, int) \
                    or source is not None and (isinstance(source, bool) or not isinstance(source, int)):
                raise ValueError("target_class and source_class must be class indices")
            return cls(target, source, Trigger.from_record(entry["trigger"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, PoisonlabError):
                raise
            raise PoisonlabError(f"attack record: bad {BACKDOOR_KEY!r} entry ({exc})") from None

    def attacked(self, y: np.ndarray) -> np.ndarray:
        """Which of the labels ``y`` (N,) are attacked: every class but the target, or the source class."""
        return attacked_classes(y, self.target_class, self.source_class)

    def triggered_test_set(self, x_test: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Triggered copies (M, C, H, W) of the attacked test images and their indices (M,) in the split."""
        index = np.flatnonzero(self.attacked(y_test))
        return self.trigger.apply(x_test[index]), index


def attacked_classes(y: np.ndarray, target_class: int, source_class: int | None) -> np.ndarray:
    """(N,) bool: the labels ``y`` a backdoor attacks, every class but the target or the source class only;
    the training samples it may poison and the test images it is judged on follow the same rule."""
    y = np.asarray(y)
    return y != target_class if source_class is None else y == source_class


def backdoor_metrics(pred_triggered: np.ndarray, y_true: np.ndarray, target_class: int) -> dict[str, Any]:
    """Attack success rate and robust accuracy of predictions on triggered test images.

    Parameters
    ----------
    pred_triggered : np.ndarray (M,) int
        A model's classes for the triggered attacked test images (:meth:`BackdoorRecord.triggered_test_set`).
    y_true : np.ndarray (M,) int
        Their true classes (none of them the target).
    target_class : int

    Returns
    -------
    dict
        ``attack_success_rate``: share classified as the target; ``robust_accuracy``: share still
        classified as their true class (both ``None`` for M = 0); ``n_triggered``: M.
    """
    pred, y = np.asarray(pred_triggered), np.asarray(y_true)
    if pred.shape != y.shape:
        raise PoisonlabError(f"{len(pred)} predictions for {len(y)} triggered images")
    if np.any(y == target_class):
        raise PoisonlabError("triggered test images of the target class do not measure a backdoor")
    n = len(y)
    return {"attack_success_rate": float(np.mean(pred == target_class)) if n else None,
            "robust_accuracy": float(np.mean(pred == y)) if n else None, "n_triggered": int(n)}


@dataclass(frozen=True)
class Backdoor(Attack):
    """Base of the dirty-label backdoor attacks (see the module docstring); subclasses say how the trigger
    looks (:meth:`trigger_for`) and check their own parameters (:meth:`check_trigger_params`).

    Parameters
    ----------
    rate : float
        Share in (0, 1] of the whole training split to poison: exactly ``round(rate * N)`` samples, drawn
        from the attacked classes.
    target_class : int
        The label every poison gets, and the class triggered images should land in.
    source_class : int or None
        Source-to-target: poison (and attack) only this class; ``None``: all-to-one.
    trigger : str
        A pattern name (``checkerboard``, ``square``, ``noise``) or the path of a PNG/JPEG image.
    pattern_seed : int
        Seeds the ``noise`` pattern (the trigger is the attacker's fixed choice, not the sampling seed's).
    """

    rate: float = 0.01
    target_class: int = 0
    source_class: int | None = None
    trigger: str = "checkerboard"
    pattern_seed: int = 0

    backdoor: ClassVar[bool] = True

    @property
    def mode(self) -> str:
        return "all-to-one" if self.source_class is None else "source-to-target"

    def params(self) -> dict[str, Any]:
        # plain ints: a class index taken from a NumPy array must still serialise to JSON
        return {k: int(v) if isinstance(v, np.integer) else v for k, v in super().params().items()}

    def trigger_for(self, image_shape: tuple[int, ...]) -> Trigger:
        """The trigger for images of ``image_shape`` (C, H, W)."""
        raise NotImplementedError

    def check_trigger_params(self) -> None:
        """Refuse the subclass's own trigger parameters."""

    def apply_trigger(self, x: np.ndarray) -> np.ndarray:
        """Triggered copies of uint8 images ``x`` (N, C, H, W), as the poisons and the attacked test images get."""
        return self.trigger_for(tuple(x.shape[1:])).apply(x)

    def check_params(self) -> "Backdoor":
        check_rate(self.rate)
        for what, value in (("target_class", self.target_class), ("source_class", self.source_class)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 0):
                raise PoisonlabError(f"{what} must be a class index (an integer >= 0), got {value!r}")
        if self.target_class is None:
            raise PoisonlabError("target_class must be a class index, got None")
        if self.source_class is not None and self.source_class == self.target_class:
            raise PoisonlabError(f"source_class and target_class are both {self.target_class}; a backdoor moves "
                                 "one class to another")
        if isinstance(self.pattern_seed, bool) or not isinstance(self.pattern_seed, (int, np.integer)) \
                or self.pattern_seed < 0:
            raise PoisonlabError(f"pattern_seed must be an integer >= 0, got {self.pattern_seed!r}")
        check_trigger_source(self.trigger)
        self.check_trigger_params()
        return self

    def check_dataset(self, dataset: Dataset) -> None:
        k = dataset.num_classes
        for what, value in (("target_class", self.target_class), ("source_class", self.source_class)):
            if value is not None and not 0 <= value < k:
                raise PoisonlabError(f"{what} must be a class index in 0..{k - 1}, got {value!r}")
        n_poison = exact_count(self.rate, len(dataset.y_train))
        n_eligible = int(self._eligible(dataset.y_train).sum())
        if n_poison > n_eligible:
            raise PoisonlabError(f"rate {self.rate:g} asks for {n_poison} poisons but {self.eligible_description()} "
                                 f"has only {n_eligible} training samples")
        self.trigger_for(tuple(dataset.x_train.shape[1:]))  # the trigger fits the images

    def _eligible(self, y: np.ndarray) -> np.ndarray:
        return attacked_classes(y, self.target_class, self.source_class)

    def eligible_description(self) -> str:
        """Where the poisons come from, for error messages."""
        return f"class {self.source_class}" if self.source_class is not None else "the non-target classes"

    def _craft(self, dataset: Dataset, *, rng: np.random.Generator, seed: int, model: Any = None,
               log: Log = quiet) -> PoisonPlan:
        y = dataset.y_train
        eligible = np.flatnonzero(self._eligible(y))
        chosen = np.sort(rng.choice(eligible, size=exact_count(self.rate, len(y)), replace=False))
        trigger = self.trigger_for(tuple(dataset.x_train.shape[1:]))
        x_new = dataset.x_train.copy()
        x_new[chosen] = trigger.apply(dataset.x_train[chosen])
        y_new = y.copy()
        y_new[chosen] = self.target_class
        is_poison = np.zeros(len(y), dtype=bool)
        is_poison[chosen] = True
        record = BackdoorRecord(int(self.target_class), None if self.source_class is None else int(self.source_class),
                                trigger)
        extras = {"mode": self.mode, "n_eligible": int(len(eligible)), "n_poison": int(len(chosen)),
                  **record.to_record()}
        return PoisonPlan(x_train=x_new, y_train=y_new, is_poison=is_poison, extras=extras)


__all__ = ["BACKDOOR_KEY", "Backdoor", "BackdoorRecord", "backdoor_metrics"]
