"""Checks shared by the daemon's settings dataclasses: one-line errors naming the key.

Every helper raises :class:`~streamsep.errors.ConfigError` with ``<section>.<key> must be
<expected>, got <value>``, the value written as in TOML (strings in double quotes), so a
message reads the same whether the value came from a config file or from Python.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from streamsep.errors import ConfigError

__all__ = [
    "show",
    "fail",
    "check_bool",
    "check_int",
    "check_number",
    "check_str",
    "check_choice",
]


def show(value: Any) -> str:
    """``value`` as TOML would write it: ``"fast"``, ``12``, ``true``, ``[1, 2]``."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def fail(key: str, expected: str, value: Any) -> ConfigError:
    """The error for ``key`` (``section.name``) holding ``value`` instead of ``expected``."""
    return ConfigError(f"{key} must be {expected}, got {show(value)}")


def check_bool(key: str, value: Any) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise fail(key, "true or false", value)
    return value


def check_int(key: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) in ``[minimum, maximum]``."""
    if minimum == 1 and maximum is None:
        expected = "a positive integer"
    elif minimum == 0 and maximum is None:
        expected = "an integer >= 0"
    elif minimum is not None and maximum is not None:
        expected = f"an integer in [{minimum}, {maximum}]"
    elif minimum is not None:
        expected = f"an integer >= {minimum}"
    else:
        expected = "an integer"
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(key, expected, value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise fail(key, expected, value)
    return value


def check_number(
    key: str, value: Any, *, minimum: float | None = None, positive: bool = False
) -> float:
    """``value`` as a float if it is a finite number, ``> 0`` if ``positive``, ``>= minimum``."""
    if positive:
        expected = "a number > 0"
    elif minimum is not None:
        expected = f"a number >= {minimum:g}"
    else:
        expected = "a number"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise fail(key, expected, value)
    if (positive and value <= 0) or (minimum is not None and value < minimum):
        raise fail(key, expected, value)
    return float(value)


def check_str(key: str, value: Any, *, empty: bool = False) -> str:
    """``value`` if it is a string (non-empty unless ``empty``)."""
    if not isinstance(value, str) or (not empty and not value):
        raise fail(key, "a string" if empty else "a non-empty string", value)
    return value


def check_choice(key: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise fail(key, "one of " + ", ".join(f'"{c}"' for c in choices), value)
    return value
