"""Typed node parameters: a dataclass per node class, filled from launch-file values with
checks that name the parameter and what was wrong."""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from typing import Any, Literal, Mapping, TypeVar, get_args, get_origin, get_type_hints

E = TypeVar("E", bound=Enum)


class ParamError(ValueError):
    """A parameter value that does not fit its declaration."""


@dataclasses.dataclass
class NoParams:
    """For nodes without parameters."""


def _convert(name: str, value: Any, hint: Any) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(name, value, arg)
            except ParamError as exc:
                errors.append(str(exc))
        raise ParamError(f"param {name!r}: {value!r} fits none of {hint}")
    if origin is Literal:
        if value not in args:
            raise ParamError(f"param {name!r}: {value!r} is not one of {list(args)}")
        return value
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamError(f"param {name!r}: expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ParamError(f"param {name!r}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(f"{name}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_convert(f"{name}[{i}]", v, item) for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or hint is tuple) else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ParamError(f"param {name!r}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ParamError(f"param {name!r}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamError(f"param {name!r}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamError(f"param {name!r}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ParamError(f"param {name!r}: expected a string, got {value!r}")
        return value
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    raise ParamError(f"param {name!r}: cannot check a value against {hint}")


def comma_list(text: str) -> tuple[str, ...]:
    """``"front, wrist,"`` (a command-line list) -> ``("front", "wrist")``: items stripped, empty
    ones dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def enum_field(enum: type[E], value: object, name: str) -> E:
    """``enum(value)``, or a ValueError naming the field ``name`` and the allowed values."""
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in enum)  # type: ignore[attr-defined]
        raise ValueError(f"{name} must be one of {choices}, got {value!r}") from None


def build_params(cls: type, values: Mapping[str, Any]) -> Any:
    """Instantiate the params dataclass ``cls`` from ``values``: unknown names, missing required
    values and type mismatches raise :class:`ParamError`."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = set(values) - set(fields)
    if unknown:
        raise ParamError(f"unknown param(s) {sorted(unknown)}; known: {sorted(fields)}")
    hints = get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _convert(name, value, hints[name])
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    if missing:
        raise ParamError(f"missing required param(s) {missing}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__ checks
        raise ParamError(str(exc)) from exc


def describe(cls: type) -> list[dict[str, Any]]:
    """Name, type and default of each parameter (for ``--help``-style listings)."""
    hints = get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        out.append({"name": f.name, "type": str(hints[f.name]), "default": default})
    return out
