"""A method's code as part of a run's identity: a digest of the source files that define it.

The digest covers the modules of the method class and of every class in its MRO except the core
`Method` and `object`, and for a second stage those of its first stage too. A finished run whose
recorded digest differs from the code in use is not reused.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
from importlib.metadata import entry_points, packages_distributions, version
from pathlib import Path
from typing import Any

from lt_bench.method import METHOD_ENTRY_POINTS, METHODS, Method


@functools.cache
def method_code(name: str) -> dict[str, Any]:
    """{"digest", "modules", "package", "version"} of the registered method `name`; package and
    version name the installed distribution that provides a plugin method (None for built-ins).

    Computed once per process, from the source files as they are when the method is first used.
    """
    modules = sorted({cls.__module__ for cls in _defining_classes(name)})
    digest = hashlib.sha256()
    for module in modules:
        digest.update(module.encode() + b"\0" + _source(module) + b"\0")
    package, version = _distribution(name, METHODS.get(name))
    return {"digest": digest.hexdigest()[:16], "modules": modules, "package": package, "version": version}


def recorded_digest(record: dict[str, Any]) -> str | None:
    """The method digest a record was written with (None for records older than digests)."""
    code = record.get("method_code")
    return code.get("digest") if isinstance(code, dict) else None


def _defining_classes(name: str) -> list[type]:
    """The classes whose code decides what method `name` computes, first stages included."""
    method_class = METHODS.get(name)
    classes = [cls for cls in method_class.__mro__ if cls not in (Method, object)]
    if method_class.first_stage is not None:
        classes += _defining_classes(method_class.first_stage)
    return classes


def _source(module_name: str) -> bytes:
    module = sys.modules[module_name]
    path = inspect.getsourcefile(module)
    if path is None:
        raise ValueError(f"method module {module_name} has no source file to fingerprint")
    return Path(path).read_bytes()


def _distribution(name: str, method_class: type[Method]) -> tuple[str | None, str | None]:
    """(name, version) of the installed distribution providing a plugin method, else (None, None)."""
    module = method_class.__module__
    top_level = module.partition(".")[0]
    if top_level == "lt_bench":
        return None, None
    for entry_point in entry_points(group=METHOD_ENTRY_POINTS, name=name):
        if entry_point.dist is not None and entry_point.value.partition(":")[0] == module:
            return entry_point.dist.name, entry_point.dist.version
    providers = packages_distributions().get(top_level)
    if providers:
        return providers[0], version(providers[0])
    return None, None
