"""The record a targeted attack leaves in ``PoisonedDataset.attack``: which test images it aims at, and how.

Gradient matching writes it and the runner, ``poisonlab validate``, the CLI and the benchmarks read it.
Everything goes through :class:`TargetedRecord`, so the JSON key names live in one place and a record
that has some of them but not the rest is an error, not an untargeted attack.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from poisonlab.errors import PoisonlabError

# field -> key in the attack record (the ``.npz``'s JSON and results.json: a public contract)
_KEYS = {"targets": "targets", "adversarial_classes": "adversarial_classes", "true_labels": "target_true_labels",
         "poison_indices": "poison_indices", "alignment_loss": "alignment_loss",
         "surrogate_seeds": "surrogate_seeds"}


@dataclass(frozen=True)
class TargetedRecord:
    """Targets of a targeted attack, one entry per target in each field.

    Attributes
    ----------
    targets : tuple of int (T,)
        Test-split indices of the target images.
    adversarial_classes : tuple of int (T,)
        The class each target should be classified as.
    true_labels : tuple of int (T,) or ()
        The targets' test labels, as the attack saw them.
    poison_indices : tuple of tuple of int (T, P_t) or ()
        The training indices of each target's poisons (gradient matching: disjoint sets).
    alignment_loss : tuple of float (T,) or ()
        Gradient matching's final alignment loss per target (1 - the cosine it reached on the surrogate).
    surrogate_seeds : tuple or ()
        Seeds of the surrogates the attack trained itself (``"given"`` for one passed in).
    """

    targets: tuple[int, ...]
    adversarial_classes: tuple[int, ...]
    true_labels: tuple[int, ...] = ()
    poison_indices: tuple[tuple[int, ...], ...] = ()
    alignment_loss: tuple[float, ...] = ()
    surrogate_seeds: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.targets)
        for name in ("adversarial_classes", "true_labels", "poison_indices", "alignment_loss"):
            value = getattr(self, name)
            if (name == "adversarial_classes" or value) and len(value) != n:
                raise PoisonlabError(f"attack record has {n} targets but {len(value)} {_KEYS[name]}")

    def to_record(self) -> dict[str, Any]:
        """The JSON-able entries for an attack record (empty optional fields left out)."""
        out: dict[str, Any] = {}
        for name, key in _KEYS.items():
            value = getattr(self, name)
            if name in ("targets", "adversarial_classes") or value:
                out[key] = [list(v) for v in value] if name == "poison_indices" else list(value)
        return out

    @classmethod
    def from_attack(cls, record: Mapping[str, Any] | None, *, required: bool = False) -> "TargetedRecord | None":
        """The targeted part of an attack record; ``None`` for an untargeted attack's record.

        ``required``: the attack is known to be targeted, so a record without targets is an error. A
        record holding some targeted keys but not ``targets`` and ``adversarial_classes`` is always one.
        """
        record = record or {}
        present = [key for key in _KEYS.values() if key in record]
        if not present and not required:
            return None
        for key in ("targets", "adversarial_classes"):
            if key not in record:
                raise PoisonlabError(f"attack record of {record.get('name', 'a targeted attack')!r} has no {key!r}"
                                     + (f" (it has {', '.join(present)})" if present else ""))
        try:
            return cls(
                targets=_ints(record["targets"], "targets"),
                adversarial_classes=_ints(record["adversarial_classes"], "adversarial_classes"),
                true_labels=_ints(record.get("target_true_labels", ()), "target_true_labels"),
                poison_indices=tuple(_ints(g, "poison_indices") for g in _sequence(record.get("poison_indices", ()),
                                                                                    "poison_indices")),
                alignment_loss=tuple(float(v) for v in _sequence(record.get("alignment_loss", ()), "alignment_loss")),
                surrogate_seeds=tuple(_sequence(record.get("surrogate_seeds", ()), "surrogate_seeds")),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, PoisonlabError):
                raise
            raise PoisonlabError(f"attack record: {exc}") from None

    def check_dataset(self, n_test: int, num_classes: int) -> None:
        """Refuse targets outside a test split of ``n_test`` images or classes outside ``0..num_classes-1``."""
        if self.targets and (min(self.targets) < 0 or max(self.targets) >= n_test):
            raise PoisonlabError("attack record names target indices outside the test split")
        if self.adversarial_classes and (min(self.adversarial_classes) < 0
                                         or max(self.adversarial_classes) >= num_classes):
            raise PoisonlabError("attack record names adversarial classes outside the label range")

    def target_array(self) -> np.ndarray:
        return np.asarray(self.targets, dtype=np.int64)

    def adversarial_array(self) -> np.ndarray:
        return np.asarray(self.adversarial_classes, dtype=np.int64)


def _sequence(value: Any, key: str) -> list[Any]:
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise PoisonlabError(f"attack record: {key!r} must be a list, got {value!r}")
    return list(value)


def _ints(value: Any, key: str) -> tuple[int, ...]:
    items = _sequence(value, key)
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in items):
        raise PoisonlabError(f"attack record: {key!r} must be a list of integers")
    return tuple(int(v) for v in items)


__all__ = ["TargetedRecord"]
