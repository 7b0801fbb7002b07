"""Name → object registries with lazy built-ins, entry-point plugins and helpful errors."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from lt_bench.errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (method classes, dataset sources, …).

    Built-ins are the modules of `builtin_package`, imported on first lookup so the CLI starts
    fast; third-party objects come from the entry-point group `entry_point_group` and must be
    subclasses of `base` when one is given. A plugin that cannot be used is named in a warning and
    only asking for it by name fails; everything else keeps working.
    """

    def __init__(
        self,
        kind: str,
        *,
        builtin_package: str | None = None,
        entry_point_group: str | None = None,
        base: type | None = None,
    ) -> None:
        self.kind = kind
        self._builtin_package = builtin_package
        self._entry_point_group = entry_point_group
        self._base = base
        self._objects: dict[str, T] = {}
        self._unusable: dict[str, str] = {}  # plugin name → the one-line reason it cannot be used
        self._packages: dict[str, str] = {}  # plugin name → the distribution that declares it
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
        if name in self._unusable:
            raise UserError(self._unusable[name])
        choices = sorted(self._objects)
        raise UserError(
            f"unknown {self.kind} {name!r}.{did_you_mean(name, choices)} Choices: {', '.join(choices)}"
        )

    def package(self, name: str) -> str | None:
        """The installed distribution whose entry point registered `name`; None for a built-in."""
        self._load()
        return self._packages.get(name)

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
            self._load_plugins(self._entry_point_group)

    def _load_plugins(self, group: str) -> None:
        """Register the entry points of `group`; an unusable one is warned about and remembered."""
        candidates: dict[str, list[EntryPoint]] = defaultdict(list)
        for entry_point in entry_points(group=group):
            candidates[entry_point.name].append(entry_point)
        for name, found in candidates.items():
            try:
                plugin = self._load_plugin(name, found)
            except UserError as error:
                self._unusable[name] = str(error)
                warnings.warn(f"{error}; the other {self.kind}s work", stacklevel=2)
                continue
            existing = self._objects.get(name)
            if existing is not None and existing is not plugin and not _same_definition(existing, plugin):
                warnings.warn(
                    f"{self.kind} plugin {name!r} from {_origin(found[0])} is ignored: {name!r} is a "
                    f"built-in {self.kind} ({_describe_origin(existing)}); rename the plugin's entry point",
                    stacklevel=2,
                )
                continue
            self.register(name, plugin)
            self._packages[name] = found[0].dist.name if found[0].dist else found[0].value

    def _load_plugin(self, name: str, found: Sequence[EntryPoint]) -> T:
        """The object of the one entry point named `name`, or a one-line UserError saying what is wrong."""
        if len({entry_point.value for entry_point in found}) > 1:
            raise UserError(
                f"{self.kind} plugin {name!r} is installed twice, "
                f"by {' and by '.join(sorted(map(_origin, found)))}; uninstall one of those packages"
            )
        entry_point = found[0]
        fix = f"fix or uninstall {_package(entry_point)}"
        try:
            plugin = entry_point.load()
        except Exception as error:  # one broken plugin must not take the others down
            lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [""]
            raise UserError(
                f"{self.kind} plugin {name!r} from {_origin(entry_point)} failed to import "
                f"({type(error).__name__}: {lines[0]}); {fix}"
            ) from error
        if self._base is not None and not (isinstance(plugin, type) and issubclass(plugin, self._base)):
            raise UserError(
                f"{self.kind} plugin {name!r} from {_origin(entry_point)} is {_describe_origin(plugin)}, "
                f"not a subclass of {_describe_origin(self._base)}; {fix}"
            )
        return plugin


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


def _package(entry_point: EntryPoint) -> str:
    """The installed distribution that declares `entry_point`."""
    return f"the package {entry_point.dist.name}" if entry_point.dist else "the package that declares it"


def _origin(entry_point: EntryPoint) -> str:
    return f"{_package(entry_point)} ({entry_point.value})"
