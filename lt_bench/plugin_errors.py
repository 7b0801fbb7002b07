"""A method plugin that breaks ends in one line naming the method, its package and the contract rule.

Built-in methods are this project's code: their exceptions stay tracebacks. A plugin's are its
authors' to fix; `--debug` (or LT_BENCH_DEBUG=1) prints the full traceback for them.
"""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from lt_bench.errors import UserError
from lt_bench.method import METHODS, ContractViolation

RAISE_RULE = "a hook returns its value and never raises"


class PluginFailed(UserError):
    """A method plugin raised, or returned what the contract rules out."""


@contextmanager
def blamed_on_plugin(method: str) -> Iterator[None]:
    """Within the block, an exception of plugin method `method` becomes a one-line PluginFailed."""
    try:
        yield
    except UserError:
        raise
    except Exception as error:
        package = METHODS.package(method)
        if package is None:
            raise
        raise PluginFailed(plugin_failure(method, package, error)) from error


def plugin_failure(method: str, package: str, error: Exception) -> str:
    """The one line that says which plugin broke which rule of the Method contract, and how."""
    where = f"method {method!r} of the package {package}"
    fix = f"fix the plugin or report it to {package}'s authors (--debug shows the traceback)"
    if isinstance(error, ContractViolation):
        return f"{where}: {error}, but the Method contract says {error.rule}; {fix}"
    hook = _plugin_hook(METHODS.get(method), error)
    what = f"its hook {hook}" if hook else "the core, on what its hooks returned,"
    reason = (str(error).strip().splitlines() or [""])[0]
    raised = f"{what} raised {type(error).__name__}: {reason}"
    return f"{where}: {raised}; the Method contract says {RAISE_RULE}; {fix}"


def _plugin_hook(method_class: type, error: Exception) -> str | None:
    """The outermost function of the plugin's own code in the traceback (the hook the core called)."""
    files = {
        inspect.getsourcefile(cls)
        for cls in method_class.__mro__
        if cls is not object and not cls.__module__.startswith("lt_bench")
    }
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename in files:
            return frame.name
    return None
