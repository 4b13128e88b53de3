"""Checks shared by the daemon's settings dataclasses: one-line errors naming the key.

Also :func:`decode_json`, the one decoder of untrusted JSON bytes (params files, control
requests): every way such bytes can be bad becomes one short reason.

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
    "JsonTextError",
    "decode_json",
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


class JsonTextError(ValueError):
    """Why bytes are not a JSON document; ``str()`` is a short reason such as
    ``not UTF-8 text (invalid start byte at byte 12)`` or ``nested too deeply``."""


def decode_json(raw: bytes) -> Any:
    """The JSON value of UTF-8 ``raw`` bytes (any JSON type; the caller checks which).

    Raises
    ------
    JsonTextError
        Not UTF-8 (UTF-16 included), not JSON, nested too deeply for the parser, or an integer
        too long to convert.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise JsonTextError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise JsonTextError(
            f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise JsonTextError("nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise JsonTextError(f"not valid JSON: {str(e).split(';')[0]}") from None
