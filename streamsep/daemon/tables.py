"""TOML tables into frozen dataclasses: unknown keys (with a close match), types, and the
dataclass's own checks, each failure one line naming the key."""

from __future__ import annotations

import difflib
import types
from dataclasses import fields
from typing import Any, Union, get_args, get_origin, get_type_hints

from streamsep.errors import ConfigError
from streamsep.validate import check_bool, check_int, fail, show

__all__ = ["build", "no_unknown"]


def no_unknown(section: str, table: dict[str, Any], known: tuple[str, ...]) -> None:
    for key in table:
        if key not in known:
            where = f"{section}.{key}" if section else f"[{key}]"
            what = "key" if section else "section"
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
            raise ConfigError(f"unknown {what} {where}{hint}")


def build(cls: Any, section: str, table: dict[str, Any], *, checked: bool = False) -> Any:
    """``cls(**table)`` after unknown-key and type checks (``checked``: ``cls`` checks its own
    types with messages naming the key)."""
    names = tuple(f.name for f in fields(cls) if f.init)
    no_unknown(section, table, names)
    kwargs = dict(table)
    if not checked:
        hints = get_type_hints(cls)
        for key, value in table.items():
            kwargs[key] = _typed(f"{section}.{key}", value, hints[key])
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:  # a check the class does not do itself
        raise ConfigError(f"{section}: {e}") from None


def _typed(key: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the annotation ``hint`` (lists become tuples)."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        for option in options:
            try:
                return _typed(key, value, option)
            except ConfigError:
                continue
        raise fail(key, " or ".join(_describe(o) for o in options), value)
    if origin is tuple:
        (item,) = get_args(hint)[:1]
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise fail(key, _describe(hint), value)
        return tuple(_typed(key, v, item) for v in value)
    if hint is bool:
        return check_bool(key, value)
    if hint is int:
        return check_int(key, value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(key, "a number", value)
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise fail(key, "a string", value)
        return value
    return value


def _describe(hint: Any) -> str:
    if get_origin(hint) is tuple:
        return f"a list of {_describe(get_args(hint)[0]).split(' ', 1)[1]}s"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        hint, show(str(hint))
    )
