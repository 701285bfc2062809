"""Name → class registries: adding a prompt base or an objective is adding a module that registers itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from prompttune.errors import PromptTuneError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named registry; ``get`` of an unknown name raises a one-line error listing the known ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T:
        if name not in self._items:
            raise PromptTuneError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
