"""Checked fields for the configuration dataclasses (settings and the stores file).

A configuration class is a frozen dataclass whose annotations and :func:`checked` bounds
are the one definition of its fields; :func:`check` converts and checks an instance's
values against them, and :func:`build` makes an instance from a mapping (a TOML table),
refusing unknown and missing keys. Errors are :class:`FieldError` naming the field, so
callers say which variable or which key of which file is wrong.

This is all the typed-configuration machinery the settings and stores need, kept small so
a process that only reads its configuration (an import, a worker) does not load a
validation library for it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

__all__ = ["FieldError", "SecretStr", "build", "check", "checked"]

T = TypeVar("T")


class FieldError(ValueError):
    """A configuration value that does not fit its field; ``loc`` is the path to it."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(f"{'.'.join(str(p) for p in loc)}: {message}")
        self.loc = loc
        self.message = message


class SecretStr:
    """A secret that never shows in a repr or a log line; ``get_secret_value()`` reads it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    __str__ = __repr__

    def __len__(self) -> int:  # an empty secret is falsy, as no secret
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def checked(
    default: Any = dataclasses.MISSING,
    *,
    ge: int | None = None,
    le: int | None = None,
    max_length: int | None = None,
    description: str = "",
) -> Any:
    """A dataclass field with bounds that :func:`check` enforces (mutable defaults are
    copied for each instance)."""
    metadata = {"ge": ge, "le": le, "max_length": max_length, "description": description}
    if isinstance(default, dict | list | set):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def check(obj: Any) -> None:
    """Convert and check every field of the dataclass instance ``obj`` in place (frozen
    classes included), against its annotation and bounds."""
    hints = _hints(obj.__class__)
    for f in dataclasses.fields(obj):
        if not f.init:
            continue
        value = _convert(getattr(obj, f.name), hints[f.name], (f.name,))
        _bounds(value, f.metadata, (f.name,))
        object.__setattr__(obj, f.name, value)


def build(cls: type[T], data: Mapping[str, Any]) -> T:
    """An instance of the dataclass ``cls`` from ``data``: unknown keys and missing
    required ones are refused, each value checked as :func:`check` does."""
    names = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    for key in data:
        if key not in names:
            raise FieldError((key,), "unknown key")
    for name, f in names.items():
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise FieldError((name,), "required")
    return cls(**data)


def _bounds(value: Any, meta: Mapping[str, Any], loc: tuple[str | int, ...]) -> None:
    if value is None:
        return
    if meta.get("ge") is not None and value < meta["ge"]:
        raise FieldError(loc, f"must be at least {meta['ge']}")
    if meta.get("le") is not None and value > meta["le"]:
        raise FieldError(loc, f"must be at most {meta['le']}")
    if meta.get("max_length") is not None and len(value) > meta["max_length"]:
        raise FieldError(loc, f"must be at most {meta['max_length']} characters")


# The field types made from one text value, with what an error says of a value of another kind.
_FROM_TEXT: dict[Any, str] = {Path: "must be a path", SecretStr: "must be text"}


def _convert(value: Any, hint: Any, loc: tuple[str | int, ...]) -> Any:
    """``value`` as the type ``hint`` names; text (from the environment) is parsed."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [o for o in options if o is not type(None)]
        return _convert(value, inner, loc)
    if origin is Literal:
        if value not in get_args(hint):
            raise FieldError(loc, f"must be one of {', '.join(repr(a) for a in get_args(hint))}")
        return value
    if origin is dict:
        key_type, value_type = get_args(hint)
        if not isinstance(value, Mapping):
            raise FieldError(loc, "must be a table")
        return {_convert(k, key_type, loc): _convert(v, value_type, (*loc, str(k))) for k, v in value.items()}
    if origin is tuple:
        (item_type, _ellipsis) = get_args(hint)
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise FieldError(loc, "must be a list")
        return tuple(_convert(v, item_type, (*loc, i)) for i, v in enumerate(value))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOLS:
            return _BOOLS[value.strip().lower()]
        raise FieldError(loc, "must be true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise FieldError(loc, "must be a whole number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise FieldError(loc, "must be text")
    if hint in _FROM_TEXT:  # a type made from text: given as it is, or as the text
        if isinstance(value, hint):
            return value
        if isinstance(value, str):
            return hint(value)
        raise FieldError(loc, _FROM_TEXT[hint])
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, Mapping):
            try:
                return build(hint, value)
            except FieldError as exc:
                raise FieldError((*loc, *exc.loc), exc.message) from None
        raise FieldError(loc, "must be a table")
    raise TypeError(f"no conversion for {hint!r}")  # pragma: no cover - a new field type


_BOOLS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
}
