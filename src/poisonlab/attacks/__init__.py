"""Poisoning attacks. Each returns a :class:`~poisonlab.data.PoisonedDataset` carrying its ground truth."""

from __future__ import annotations

from typing import Any

from poisonlab.attacks.base import Attack, PoisonPlan
from poisonlab.errors import PoisonlabError

# name -> Attack subclass; each attack module adds itself here.
ATTACKS: dict[str, type[Attack]] = {}


def register(cls: type[Attack]) -> type[Attack]:
    ATTACKS[cls.name] = cls
    return cls


def make_attack(name: str, **params: Any) -> Attack:
    """An attack by registered name, e.g. ``make_attack("label-flip", rate=0.1)``."""
    _load_all()
    if name not in ATTACKS:
        raise PoisonlabError(f"unknown attack {name!r}; choose one of {', '.join(sorted(ATTACKS))}")
    try:
        return ATTACKS[name](**params)
    except TypeError as exc:
        raise PoisonlabError(f"attack {name!r}: {exc}") from None


def _load_all() -> None:
    import importlib  # noqa: PLC0415

    for module in _ATTACK_MODULES:
        importlib.import_module(f"poisonlab.attacks.{module}")


_ATTACK_MODULES: tuple[str, ...] = ("label_flip", "fgsm", "gradient_matching")

__all__ = ["ATTACKS", "Attack", "PoisonPlan", "make_attack", "register"]
