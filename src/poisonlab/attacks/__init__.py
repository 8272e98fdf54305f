"""Poisoning attacks. Each returns a :class:`~poisonlab.data.PoisonedDataset` carrying its ground truth."""

from __future__ import annotations

from typing import Any

from poisonlab.attacks.base import Attack, PoisonPlan
from poisonlab.registry import Registry

# name -> Attack subclass; each module listed here registers its attack when imported.
ATTACKS: Registry[Attack] = Registry("attack", "poisonlab.attacks", ("label_flip", "fgsm", "gradient_matching"))


def register(cls: type[Attack]) -> type[Attack]:
    return ATTACKS.add(cls.name, cls)


def make_attack(name: str, **params: Any) -> Attack:
    """An attack by registered name, e.g. ``make_attack("label-flip", rate=0.1)``."""
    return ATTACKS.make(name, **params)


__all__ = ["ATTACKS", "Attack", "PoisonPlan", "make_attack", "register"]
