"""Name → object registries with lazy built-ins, entry-point plugins and helpful errors."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from lt_bench.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (method classes, dataset sources, …).

    Built-ins are the modules of `builtin_package`, imported on first lookup so the CLI starts
    fast; third-party objects come from the entry-point group `entry_point_group`.
    """

    def __init__(
        self, kind: str, *, builtin_package: str | None = None, entry_point_group: str | None = None
    ) -> None:
        self.kind = kind
        self._builtin_package = builtin_package
        self._entry_point_group = entry_point_group
        self._objects: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register `obj` under `name`; used as a decorator when `obj` is omitted."""

        def add(target: T) -> T:
            existing = self._objects.get(name)
            if existing is not None and existing is not target and not _same_definition(existing, target):
                raise ValueError(
                    f"{self.kind} name {name!r} is already registered to {_describe_origin(existing)}; "
                    f"choose another name for {_describe_origin(target)}"
                )
            self._objects[name] = target
            return target

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        """The object registered under `name`, or a UserError with suggestions."""
        self._load()
        if name in self._objects:
            return self._objects[name]
        choices = sorted(self._objects)
        raise UserError(
            f"unknown {self.kind} {name!r}.{did_you_mean(name, choices)} Choices: {', '.join(choices)}"
        )

    def names(self) -> list[str]:
        self._load()
        return sorted(self._objects)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._objects[name]

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._objects

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._builtin_package:
            package = importlib.import_module(self._builtin_package)
            for module in pkgutil.iter_modules(package.__path__):
                if not module.name.startswith("_"):
                    importlib.import_module(f"{self._builtin_package}.{module.name}")
        if self._entry_point_group:
            for entry_point in entry_points(group=self._entry_point_group):
                if entry_point.name in self._objects:
                    continue
                try:
                    loaded = entry_point.load()
                except Exception as error:  # a broken plugin must not take the harness down
                    raise UserError(
                        f"plugin {entry_point.name!r} ({entry_point.value}) failed to import: {error}; "
                        f"fix or uninstall the package that provides it"
                    ) from error
                self.register(entry_point.name, loaded)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """ " Did you mean 'a' or 'b'?" for the choices close to `name`; empty when none is."""
    close = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def describe(obj: object) -> str:
    """One line describing a registered object: its `description` or its docstring's first line."""
    text = getattr(obj, "description", None) or (obj.__doc__ or "").strip()
    return text.splitlines()[0] if text else ""


def _same_definition(first: object, second: object) -> bool:
    """True when both are the same class or function re-imported (e.g. a module loaded twice)."""
    return getattr(first, "__qualname__", None) == getattr(second, "__qualname__", object()) and (
        getattr(first, "__module__", None) == getattr(second, "__module__", object())
    )


def _describe_origin(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
