"""Name -> class registries for attacks and defenses, filled lazily by importing their modules."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from poisonlab.errors import PoisonlabError

T = TypeVar("T")


class Registry(Mapping[str, type[T]], Generic[T]):
    """A read-only mapping of registered names to classes.

    The modules listed in ``modules`` (inside ``package``) register their classes when imported; the
    first lookup imports them all, so ``import poisonlab.defenses`` stays cheap and free of cycles.
    """

    def __init__(self, kind: str, package: str, modules: tuple[str, ...]) -> None:
        self.kind = kind
        self._package = package
        self._modules = modules
        self._items: dict[str, type[T]] = {}
        self._loaded = False

    def add(self, name: str, cls: type[T]) -> type[T]:
        self._items[name] = cls
        return cls

    def _load(self) -> dict[str, type[T]]:
        if not self._loaded:
            self._loaded = True
            for module in self._modules:
                importlib.import_module(f"{self._package}.{module}")
        return self._items

    def __getitem__(self, name: str) -> type[T]:
        return self._load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def make(self, name: str, **params: Any) -> T:
        """An instance of the class registered as ``name``; unknown names and parameters are user errors."""
        if name not in self:
            raise PoisonlabError(f"unknown {self.kind} {name!r}; choose one of {', '.join(sorted(self))}")
        try:
            return self[name](**params)
        except TypeError as exc:
            raise PoisonlabError(f"{self.kind} {name!r}: {exc}") from None
