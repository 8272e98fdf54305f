"""Name -> class registries, written out explicitly in each package face (``poisonlab.attacks``,
``poisonlab.defenses``, ``poisonlab.models``), so that what exists is visible in one place."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from poisonlab.errors import PoisonlabError

T = TypeVar("T")


class Registry(Mapping[str, type[T]], Generic[T]):
    """A read-only mapping of registered names to classes; ``make`` builds one and turns unknown names and
    parameters into :class:`PoisonlabError`.

    Parameters
    ----------
    kind : str
        What the entries are, for error messages ("attack", "defense", "model").
    items : mapping of str to class
        The entries, in the order ``--help`` and listings show them.
    """

    def __init__(self, kind: str, items: Mapping[str, type[T]]) -> None:
        self.kind = kind
        self._items = dict(items)

    def __getitem__(self, name: str) -> type[T]:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def check_name(self, name: str) -> type[T]:
        """The class registered as ``name``; an unknown name is a user error that lists the known ones."""
        if name not in self._items:
            raise PoisonlabError(f"unknown {self.kind} {name!r}; choose one of {', '.join(sorted(self._items))}")
        return self._items[name]

    def make(self, name: str, **params: Any) -> T:
        """An instance of the class registered as ``name``; unknown names and parameters are user errors."""
        cls = self.check_name(name)
        known = self.parameters(name)
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise PoisonlabError(f"{self.kind} {name!r}: unknown parameter {unknown[0]!r}; known: "
                                 f"{', '.join(known) or 'none'}")
        try:
            return cls(**params)
        except TypeError as exc:
            raise PoisonlabError(f"{self.kind} {name!r}: {exc}") from None

    def parameters(self, name: str) -> tuple[str, ...]:
        """The keyword parameters the class registered as ``name`` takes."""
        signature = inspect.signature(self.check_name(name))
        return tuple(p.name for p in signature.parameters.values()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
