"""Name → class registries: adding a prompt base or an objective is adding a module that registers itself,
with a complete declaration (``DeclaredRegistry``) of what the rest of the code reads about it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

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


class DeclaredRegistry(Registry[type[Any]]):
    """A registry of classes that must declare facts the shared code reads (the cost model, above all),
    as abstract classmethods of their interface: ``declarations`` maps each name to what it declares and
    how to define it. Registering a class that leaves one undeclared is a one-line error, so a plugin
    is never costed by a guess."""

    def __init__(self, kind: str, declarations: dict[str, tuple[str, str]]) -> None:
        super().__init__(kind)
        self.declarations = declarations

    def register(self, name: str) -> Callable[[type[Any]], type[Any]]:
        add = super().register(name)

        def decorator(cls: type[Any]) -> type[Any]:
            for attribute, (what, how) in self.declarations.items():
                if getattr(getattr(cls, attribute), "__isabstractmethod__", False):
                    raise TypeError(
                        f"{self.kind} {name!r} ({cls.__module__}.{cls.__qualname__}) declares no {what}: "
                        f"define {how}"
                    )
            return add(cls)

        return decorator
