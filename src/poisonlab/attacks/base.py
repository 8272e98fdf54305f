"""The attack base: one small class, the shared chores in ``poison``, one method per attack."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

from poisonlab.data.dataset import Dataset, PoisonedDataset
from poisonlab.errors import PoisonlabError


Log = Callable[[str], None]


def quiet(message: str) -> None:
    """A log that says nothing."""


@dataclass(frozen=True)
class PoisonPlan:
    """What an attack's ``_craft`` returns: the new training arrays and which samples it changed."""

    x_train: np.ndarray
    y_train: np.ndarray
    is_poison: np.ndarray
    extras: dict[str, Any] | None = None  # JSON-able facts worth keeping (targets, losses, timings)


class Attack(ABC):
    """Base of every attack. Subclasses are dataclasses of their parameters and implement ``_craft``.

    ``poison`` checks, never mutates its input, and returns a :class:`PoisonedDataset` whose
    ``is_poison`` mask and ``original_labels`` are the ground truth for every later metric. Parameters
    are checked twice over: ``check_params`` without data (a config is refused before anything is
    loaded or trained), ``check_dataset`` against the data the attack is about to poison.
    """

    name: str = ""
    # whether ``poison`` uses a trained surrogate ``model`` (the runner then trains the clean model first)
    uses_model: bool = False
    # whether the attack aims at chosen test images (its record then holds a TargetedRecord)
    targeted: bool = False
    # whether the attack plants a trigger (its record then holds a BackdoorRecord; success is the ASR)
    backdoor: bool = False

    def poison(self, dataset: Dataset, *, seed: int = 0, model: Any = None, log: Log = quiet) -> PoisonedDataset:
        """Attack ``dataset``'s training split. ``model``: a trained surrogate for attacks that need
        one (FGSM, gradient matching); when ``None`` they train their own on the clean data. ``log``
        receives a line for each long step (a surrogate trained, a target crafted)."""
        if isinstance(dataset, PoisonedDataset):
            raise PoisonlabError("dataset is already poisoned; attack the clean dataset")
        self.check_params()
        self.check_dataset(dataset)
        rng = np.random.default_rng(seed)
        plan = self._craft(dataset, rng=rng, seed=seed, model=model, log=log)
        if plan.x_train.shape != dataset.x_train.shape or plan.x_train.dtype != np.uint8:
            raise AssertionError(f"{self.name}: crafted images changed shape or dtype")
        record = {"name": self.name, "params": self.params(), "seed": seed}
        if plan.extras:
            record.update(plan.extras)
        is_poison = plan.is_poison.astype(bool)
        changed = not np.array_equal(plan.x_train[is_poison], dataset.x_train[is_poison])
        return PoisonedDataset(
            name=dataset.name, x_train=plan.x_train, y_train=plan.y_train.astype(np.int64),
            x_test=dataset.x_test, y_test=dataset.y_test, classes=dataset.classes,
            is_poison=is_poison, original_labels=dataset.y_train.copy(), attack=record,
            original_pixels=dataset.x_train[is_poison].copy() if changed else None,
        )

    def params(self) -> dict[str, Any]:
        return asdict(self) if hasattr(self, "__dataclass_fields__") else {}

    def check_params(self) -> "Attack":
        """Raise :class:`PoisonlabError` (naming the parameter) for a parameter of the wrong type or out of
        range, without looking at any data; returns ``self``."""
        return self

    def check_dataset(self, dataset: Dataset) -> None:
        """Raise :class:`PoisonlabError` for parameters that cannot work on ``dataset`` (class indices out of
        range, a budget that gives no poison)."""

    @abstractmethod
    def _craft(self, dataset: Dataset, *, rng: np.random.Generator, seed: int, model: Any = None,
               log: Log = quiet) -> PoisonPlan:
        """Build the poisoned training split. Must not modify ``dataset``'s arrays."""


def exact_count(rate: float, n_eligible: int, what: str = "rate") -> int:
    """``round(rate * n_eligible)`` (round half to even, as Python's ``round``); a rate so small that it
    poisons nothing is a user error, not an attack that silently does nothing."""
    count = int(round(rate * n_eligible))
    if count < 1:
        raise PoisonlabError(f"{what} {rate:g} of {n_eligible} eligible samples poisons none; use at least "
                             f"{1 / max(n_eligible, 1):.2g} (one sample)")
    return count


def check_rate(rate: Any, what: str = "rate") -> None:
    if isinstance(rate, bool) or not (isinstance(rate, (int, float)) and 0 < rate <= 1):
        raise PoisonlabError(f"{what} must be in (0, 1], got {rate!r}")


def check_int(value: Any, what: str, *, minimum: int = 1) -> None:
    """An integer (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise PoisonlabError(f"{what} must be {kind}, got {value!r}")


def check_number(value: Any, what: str, *, low: float = 0.0, high: float = math.inf, low_open: bool = True) -> None:
    """A finite real number in ``(low, high]`` (``[low, high]`` when not ``low_open``)."""
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) \
        and math.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]" if math.isfinite(high) else \
            ("a positive number" if low == 0 and low_open else f">= {low:g}")
        kind = interval if interval.startswith(("a ", ">")) else f"in {interval}"
        raise PoisonlabError(f"{what} must be {kind}, got {value!r}")
