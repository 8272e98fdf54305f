"""The attack base: one small class, the shared chores in ``poison``, one method per attack."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from poisonlab.data.dataset import Dataset, PoisonedDataset
from poisonlab.errors import PoisonlabError


@dataclass(frozen=True)
class PoisonPlan:
    """What an attack's ``_craft`` returns: the new training arrays and which samples it changed."""

    x_train: np.ndarray
    y_train: np.ndarray
    is_poison: np.ndarray
    extras: dict[str, Any] | None = None  # JSON-able facts worth keeping (targets, losses, timings)


class Attack(ABC):
    """Base of every attack. Subclasses are dataclasses of their parameters and implement ``_craft``.

    ``poison`` validates, never mutates its input, and returns a :class:`PoisonedDataset` whose
    ``is_poison`` mask and ``original_labels`` are the ground truth for every later metric.
    """

    name: str = ""
    # whether ``poison`` uses a trained surrogate ``model`` (the runner then trains the clean model first)
    uses_model: bool = False

    def poison(self, dataset: Dataset, *, seed: int = 0, model: Any = None) -> PoisonedDataset:
        """Attack ``dataset``'s training split. ``model``: a trained surrogate for attacks that need
        one (FGSM, gradient matching); when ``None`` they train their own on the clean data."""
        if isinstance(dataset, PoisonedDataset):
            raise PoisonlabError("dataset is already poisoned; attack the clean dataset")
        self.validate(dataset)
        rng = np.random.default_rng(seed)
        plan = self._craft(dataset, rng=rng, seed=seed, model=model)
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

    def validate(self, dataset: Dataset) -> None:
        """Raise :class:`PoisonlabError` for parameters that cannot work on ``dataset``."""

    @abstractmethod
    def _craft(self, dataset: Dataset, *, rng: np.random.Generator, seed: int, model: Any = None) -> PoisonPlan:
        """Build the poisoned training split. Must not modify ``dataset``'s arrays."""


def exact_count(rate: float, n_eligible: int) -> int:
    """``round(rate * n_eligible)`` (round half to even, as Python's ``round``)."""
    return int(round(rate * n_eligible))


def check_rate(rate: float, what: str = "rate") -> None:
    if isinstance(rate, bool) or not (isinstance(rate, (int, float)) and 0 < rate <= 1):
        raise PoisonlabError(f"{what} must be in (0, 1], got {rate!r}")
