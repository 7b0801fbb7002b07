"""What may be tuned, as data: a method's options (its paper's constants, with their defaults) and
the ranges `lt-bench tune` searches, beside the shared learning rate and weight decay."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """Values a tuned setting may take: [low, high], log-uniform when `log`, whole numbers when
    `integer`; with `per_recipe` the bounds multiply the recipe's value (e.g. lr × [0.1, 10])."""

    low: float
    high: float
    log: bool = False
    integer: bool = False
    per_recipe: bool = False

    def bounds(self, recipe_value: float | None = None) -> tuple[float, float]:
        """The absolute [low, high] for a recipe whose value of this setting is `recipe_value`."""
        if not self.per_recipe:
            return self.low, self.high
        assert recipe_value is not None, "a per-recipe range needs the recipe's value"
        return self.low * recipe_value, self.high * recipe_value

    def describe(self, recipe_value: float | None = None) -> str:
        low, high = self.bounds(recipe_value)
        kind = "integer" if self.integer else "log-uniform" if self.log else "uniform"
        relative = f" (recipe {recipe_value:g} × [{self.low:g}, {self.high:g}])" if self.per_recipe else ""
        return f"{kind} [{low:g}, {high:g}]{relative}"


@dataclass(frozen=True)
class Option:
    """A method constant that `--option NAME=VALUE` sets: its paper's value and the range tuned over."""

    default: float
    range: Range
    about: str = ""

    def accepts(self, value: float) -> bool:
        integral = not self.range.integer or float(value).is_integer()
        return math.isfinite(value) and self.range.low <= value <= self.range.high and integral


# Every method inherits these: the recipe's learning rate × [0.1, 10] and the weight decay over
# [1e-5, 1e-1], both log-uniform (the usual scales of SGD's two settings).
SHARED_SEARCH_SPACE: Mapping[str, Range] = {
    "lr": Range(0.1, 10.0, log=True, per_recipe=True),
    "weight_decay": Range(1e-5, 1e-1, log=True),
}


def option_ranges(options: Mapping[str, Option]) -> dict[str, Range]:
    """The search ranges of a method's options."""
    return {name: option.range for name, option in options.items()}
