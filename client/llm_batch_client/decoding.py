"""Reading the service's JSON into the frozen dataclasses of `data.py`, driven by their type hints.

One reader for every answer instead of a hand-written `from_json` per class. A field may name its JSON key
(`json_key`), take a reader of its own (`reader`: money from its exact decimal string, say), or receive the
whole JSON object (`raw`). Unknown keys are ignored, so a newer service with more fields still reads.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, Union

from llm_batch_client.errors import UnexpectedAnswer

D = TypeVar("D")
Reader = Callable[[Any], Any]
_MISSING = dataclasses.MISSING


def key(name: str, *, reader: Reader | None = None, default: Any = _MISSING) -> Any:
    """A field read from JSON key `name` (for `pass`, a Python keyword, or `usd_exact` read into `usd`)."""
    metadata: dict[str, Any] = {"json_key": name}
    if reader is not None:
        metadata["reader"] = reader
    return dataclasses.field(default=default, metadata=metadata)


def raw_json() -> Any:
    """A field that keeps the whole JSON object as received (for `--json` output and fields not modelled)."""
    return dataclasses.field(default_factory=dict, compare=False, repr=False, metadata={"raw": True})


def exact_decimal(value: Any) -> Decimal:
    """An exact amount: a decimal string (or an integer). A float is refused: it is not exact."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"expected an exact decimal string, got {type(value).__name__}")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise TypeError(f"not a decimal number: {value!r}") from None


def exact_money(value: Any) -> Decimal:
    """`{"usd": 0.1, "usd_exact": "0.1"}` read as Decimal("0.1"), from the exact string."""
    if not isinstance(value, Mapping) or "usd_exact" not in value:
        raise TypeError("expected an object with usd_exact")
    return exact_decimal(value["usd_exact"])


def timestamp(value: Any) -> datetime:
    """ISO 8601; the service writes UTC with `Z` (older versions without an offset: read as UTC)."""
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value  # Python 3.10 reads no "Z"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def decode(cls: type[D], data: Any, where: str | None = None) -> D:
    """`data` (parsed JSON) as an instance of the dataclass `cls`; UnexpectedAnswer names the first bad field."""
    try:
        value: D = _read(cls, data, where or cls.__name__)
        return value
    except _BadField as error:
        raise UnexpectedAnswer(f"{error.where}: {error.reason}") from None


class _BadField(Exception):
    def __init__(self, where: str, reason: str) -> None:
        super().__init__(where, reason)
        self.where = where
        self.reason = reason


@functools.cache
def _plan(cls: type) -> tuple[tuple[dataclasses.Field[Any], Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((field, hints[field.name]) for field in dataclasses.fields(cls) if field.init)


def _read(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _read_dataclass(hint, value, where)
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        return _read_union(typing.get_args(hint), value, where)
    if origin is tuple:
        return _read_tuple(typing.get_args(hint)[0], value, where)
    if origin in (dict, Mapping):
        return _read_mapping(typing.get_args(hint)[1], value, where)
    return _read_scalar(hint, value, where)


def _read_dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, Mapping):
        raise _BadField(where, f"expected an object, got {type(value).__name__}")
    arguments: dict[str, Any] = {}
    for field, hint in _plan(cls):
        if field.metadata.get("raw"):
            arguments[field.name] = value
            continue
        name = field.metadata.get("json_key", field.name)
        path = f"{where}.{name}"
        if name not in value:
            if field.default is _MISSING and field.default_factory is _MISSING:
                raise _BadField(path, "missing")
            continue
        reader = field.metadata.get("reader")
        if reader is not None and value[name] is not None:
            try:
                arguments[field.name] = reader(value[name])
            except (TypeError, ValueError, KeyError) as error:
                raise _BadField(path, str(error)) from None
        else:
            arguments[field.name] = _read(hint, value[name], path)
    return cls(**arguments)


def _read_union(options: tuple[Any, ...], value: Any, where: str) -> Any:
    if value is None and type(None) in options:
        return None
    others = [option for option in options if option is not type(None)]
    if len(others) != 1:
        raise _BadField(where, "a union of several types cannot be read")  # not used in data.py
    return _read(others[0], value, where)


def _read_tuple(item: Any, value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise _BadField(where, f"expected a list, got {type(value).__name__}")
    return tuple(_read(item, element, f"{where}[{index}]") for index, element in enumerate(value))


def _read_mapping(item: Any, value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _BadField(where, f"expected an object, got {type(value).__name__}")
    return {str(name): _read(item, element, f"{where}.{name}") for name, element in value.items()}


def _read_scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is datetime:
        try:
            return timestamp(value)
        except (TypeError, ValueError) as error:
            raise _BadField(where, str(error)) from None
    if hint is Decimal:
        try:
            return exact_decimal(value)
        except TypeError as error:
            raise _BadField(where, str(error)) from None
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise _BadField(where, f"expected {hint.__name__}, got bool")
    if not isinstance(value, hint):
        raise _BadField(where, f"expected {hint.__name__}, got {type(value).__name__}")
    return value
