"""Range checks of recipe values; each failure is one :class:`~cltt.errors.RecipeError` line
naming the key."""

from __future__ import annotations

import math
import re

from cltt.errors import RecipeError


def check_finite(value: float, key: str) -> None:
    """NaN and infinity compare false with everything, so a range check alone lets them through."""
    if isinstance(value, float) and not math.isfinite(value):
        raise RecipeError(f"recipe key '{key}' must be a finite number, got {value}")


def check_min(value: float, key: str, low: float) -> None:
    check_finite(value, key)
    if value < low:
        raise RecipeError(f"recipe key '{key}' must be >= {low}, got {value}")


def check_max(value: float, key: str, high: float, why: str) -> None:
    """An upper bound where a value sizes an allocation: ``why`` says what it costs."""
    check_finite(value, key)
    if value > high:
        raise RecipeError(f"recipe key '{key}' must be <= {high:,}, got {value:,}: {why}")


def check_positive(value: float, key: str) -> None:
    check_finite(value, key)
    if not value > 0:
        raise RecipeError(f"recipe key '{key}' must be > 0, got {value}")


def check_probability(value: float, key: str) -> None:
    if not 0.0 <= value <= 1.0:
        raise RecipeError(f"recipe key '{key}' is a probability and must be in [0, 1], got {value}")


def check_unique(values: list, key: str) -> None:
    """No entry twice (a readout or baseline listed twice was probed and reported twice)."""
    twice = sorted({str(v) for v in values if values.count(v) > 1})
    if twice:
        raise RecipeError(f"recipe key '{key}' must list each entry once; {', '.join(twice)} is there more than once, "
                          f"got {values}")


def check_regex(pattern: str, key: str) -> None:
    try:
        re.compile(pattern)
    except re.error as err:
        raise RecipeError(f"recipe key '{key}' holds {pattern!r}, which is not a regular expression ({err})") from None


def check_pair(pair: list[float], key: str, low: float, high: float | None = None) -> None:
    ok = len(pair) == 2 and all(math.isfinite(v) for v in pair) and low <= pair[0] <= pair[1] and \
        (high is None or pair[1] <= high)
    if not ok:
        bound = f" within [{low}, {high}]" if high is not None else f" >= {low}"
        raise RecipeError(f"recipe key '{key}' must be [low, high], finite, with low <= high{bound}, got {pair}")


def check_finite_list(values: list[float], key: str, low: float | None = None, strict: bool = False) -> None:
    """Every entry finite and (with ``low``) >= ``low``, or > ``low`` when ``strict``."""
    for value in values:
        bad = not math.isfinite(value) or (low is not None and (value <= low if strict else value < low))
        if bad:
            bound = "" if low is None else f" {'>' if strict else '>='} {low}"
            raise RecipeError(f"recipe key '{key}' must list finite numbers{bound}, got {values}")
