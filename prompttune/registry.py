"""Name → class registries: adding a prompt base, an objective or a task is adding a module that registers
itself, with a complete declaration (``DeclaredRegistry``) of what the rest of the code reads about it. The
module lives in the package or in a plugin: an installed distribution that names it under the entry-point
group ``prompttune.plugins`` (``load_plugins``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import metadata
from typing import Any, Generic, TypeVar

from prompttune.errors import PromptTuneError

PLUGIN_GROUP = "prompttune.plugins"

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
        load_plugins()
        if name not in self._items:
            raise PromptTuneError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}")
        return self._items[name]

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        load_plugins()
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


def plugins() -> list[metadata.EntryPoint]:
    """The installed plugins: entry points of the group ``prompttune.plugins``, each naming a module
    (``name = "module"`` in the distribution's ``[project.entry-points."prompttune.plugins"]``)."""
    return sorted(metadata.entry_points(group=PLUGIN_GROUP), key=lambda entry: entry.name)


@functools.cache
def load_plugins() -> None:
    """Import every plugin's module, whose import registers its bases, objectives and tasks: once, at the
    first lookup of any registry (``get``, ``names``, ``in``), so a plugin is known wherever a name is
    looked up, and is imported after the package's own modules (a plugin imports them freely). A plugin
    that fails to import, or registers an incomplete declaration, is a one-line error naming it. (A
    lookup while a plugin loads finds the plugin in ``sys.modules``: no loop.)"""
    for entry in plugins():
        try:
            entry.load()
        except PromptTuneError:
            raise
        except Exception as exc:  # noqa: BLE001 — any failure of a user's module is reported as one line
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise PromptTuneError(
                f"plugin {entry.name!r} (module {entry.value}): {type(exc).__name__}: {first}"
            ) from exc
