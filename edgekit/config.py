"""Strict conversion between plain dicts (YAML/JSON) and frozen, typed dataclasses.

Unknown keys are rejected with a "did you mean", enum values are checked, and every error names the
dotted path of the offending key, e.g. ``recipe.quantization.estimator``.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from .errors import RecipeError, did_you_mean

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a component (a transform, a target) that takes none: any key is unknown."""


def from_dict(cls: type[T], data: Any, where: str = "recipe") -> T:
    """Build dataclass ``cls`` from ``data``; raise RecipeError naming ``where`` on any mismatch."""
    return _convert(cls, data, where)


def to_dict(obj: Any) -> Any:
    """Inverse of :func:`from_dict`: enums become their values, tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors, shaped = [], []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except RecipeError as exc:
                errors.append(str(exc))
                if isinstance(value, dict) and (dataclasses.is_dataclass(arg) or get_origin(arg) is dict):
                    shaped.append(str(exc))  # a mapping given for a mapping type: its own error says what is wrong
        errors = shaped if len(shaped) == 1 else errors
        raise RecipeError(errors[0] if len(errors) == 1 else f"{where}: invalid value {value!r}")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        try:
            return tp(value)  # an enum's ``_missing_`` may accept an old spelling
        except ValueError:
            valid = [m.value for m in tp]
            raise RecipeError(f"{where}: '{value}' is not valid{did_you_mean(str(value), map(str, valid))}") from None
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise RecipeError(f"{where}: expected a list, got {type(value).__name__}")
        (item_tp, *rest) = get_args(tp) or (Any,)
        return tuple(_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected a mapping, got {type(value).__name__}")
        _, val_tp = get_args(tp) or (str, Any)
        return {str(k): _convert(val_tp, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise RecipeError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    return value


def _convert_dataclass(cls: Any, value: Any, where: str) -> Any:
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise RecipeError(f"{where}: expected a mapping for {cls.__name__}, got {value!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in value:
        if key not in fields:
            raise RecipeError(f"{where}: unknown key '{key}'{did_you_mean(str(key), fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecipeError(f"{where}: missing required key '{name}'")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise RecipeError(f"{where}: {exc}") from None
