"""Registry lookups, suggestions and name clashes."""

import pytest

from lt_bench.errors import UserError
from lt_bench.method import METHODS
from lt_bench.registry import Registry, describe


def test_unknown_name_suggests_close_ones_and_lists_choices():
    with pytest.raises(UserError) as caught:
        METHODS.get("causal_tdee")
    message = str(caught.value)
    assert "did you mean 'causal_tde'" in message.lower()
    assert "ce" in message and "deconfound" in message
    assert "\n" not in message


def test_registering_another_object_under_a_taken_name_fails():
    registry: Registry[object] = Registry("thing")

    @registry.register("alpha")
    class First:
        pass

    registry.register("alpha", First)  # the same object again is harmless
    with pytest.raises(ValueError, match="already registered"):

        @registry.register("alpha")
        class Second:
            pass


def test_builtins_are_loaded_lazily_with_descriptions():
    names = METHODS.names()
    assert {"ce", "causal_tde", "deconfound"} <= set(names)
    assert "TDE" in describe(METHODS.get("causal_tde"))
