"""Reading the service's JSON into the frozen dataclasses of `data.py`, driven by their type hints.

One reader for every answer instead of a hand-written `from_json` per class. A field may name its JSON key
(`json_key`), take a reader of its own (`reader`: money from its exact decimal string, say), or receive the
whole JSON object (`raw`). Unknown keys are ignored, so a newer service with more fields still reads.

The type hints are read once per class and turned into a reader function per field (`_compile`): a result
export reads tens of thousands of rows, and walking the hints for each of them cost more than the HTTP and the
JSON parsing together.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, TypeVar, Union

from llm_batch_client.errors import UnexpectedAnswer

D = TypeVar("D")
Reader = Callable[[Any], Any]


class ObjectReader(Protocol):
    """A dataclass's reader: the instance from a JSON object, `known` giving fields the JSON does not carry."""

    def __call__(self, value: Any, known: Mapping[str, Any] | None = None) -> Any: ...


_MISSING = dataclasses.MISSING
_ABSENT = object()  # a key the JSON object does not have


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
    if type(value) is not str and (isinstance(value, bool) or not isinstance(value, int)):
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
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        if not value.endswith(("Z", "z")):
            raise
        moment = datetime.fromisoformat(value[:-1] + "+00:00")  # Python 3.10 reads no "Z"
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def decoder(cls: type[D]) -> Callable[[Any, Mapping[str, Any] | None], D]:
    """decode() for one class, its reader looked up once: for the many rows of a listing."""
    read = _reader_of(cls)

    def decode_one(data: Any, known: Mapping[str, Any] | None = None) -> D:
        try:
            value: D = read(data, known)
            return value
        except _BadField as error:
            raise UnexpectedAnswer(f"{cls.__name__}{''.join(error.path)}: {error.reason}") from None

    return decode_one


def decode(cls: type[D], data: Any, where: str | None = None, *, known: Mapping[str, Any] | None = None) -> D:
    """`data` (parsed JSON) as an instance of the dataclass `cls`; UnexpectedAnswer names the first bad field.
    `known`: values of fields the JSON does not carry (a result row's batch id, which its request named)."""
    try:
        value: D = _reader_of(cls)(data, known)
        return value
    except _BadField as error:
        path = "".join(error.path)
        raise UnexpectedAnswer(f"{where or cls.__name__}{path}: {error.reason}") from None


def decode_member(instance: Any, json_key: str, hint: Any) -> Any:
    """The member `json_key` of an instance's `raw` JSON, read as type `hint` (for a value read when first
    used); UnexpectedAnswer when it is missing or does not fit."""
    raw = instance.raw
    where = f"{type(instance).__name__}.{json_key}"
    if json_key not in raw:
        raise UnexpectedAnswer(f"{where}: missing")
    read = _compile(hint)
    if read is None:
        return raw[json_key]
    try:
        return read(raw[json_key])
    except _BadField as error:
        raise UnexpectedAnswer(f"{where}{''.join(error.path)}: {error.reason}") from None


def _reader_of(cls: Any) -> ObjectReader:
    return _dataclass_reader(cls)


class _BadField(Exception):
    """A value that does not fit; `path` is filled in on the way out (`.usage.input_tokens`, `[2]`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


@functools.cache
def _compile(hint: Any) -> Reader | None:
    """The reader of a value of type `hint`; None when the JSON value is taken as it is (Any)."""
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass_reader(hint)
    origin = typing.get_origin(hint)
    if hint is Any:
        return None
    if origin in (Union, types.UnionType):
        return _optional_reader(typing.get_args(hint))
    if origin is tuple:
        return _tuple_reader(_compile(typing.get_args(hint)[0]))
    if origin in (dict, Mapping):
        return _mapping_reader(_compile(typing.get_args(hint)[1]))
    return _scalar_reader(hint)


def _optional_reader(options: tuple[Any, ...]) -> Reader | None:
    others = [option for option in options if option is not type(None)]
    if len(others) != 1:
        raise TypeError("a union of several types cannot be read")  # not used in data.py
    inner = _compile(others[0])
    if inner is None:
        return None

    def read(value: Any) -> Any:
        return None if value is None else inner(value)

    return read


def _tuple_reader(item: Reader | None) -> Reader:
    def read(value: Any) -> tuple[Any, ...]:
        if type(value) is not list:
            raise _BadField(f"expected a list, got {type(value).__name__}")
        if item is None:
            return tuple(value)
        index = 0
        try:
            out = []
            for index, element in enumerate(value):  # noqa: B007  (index names the element at fault)
                out.append(item(element))
            return tuple(out)
        except _BadField as error:
            error.path.insert(0, f"[{index}]")
            raise

    return read


def _mapping_reader(item: Reader | None) -> Reader:
    def read(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _BadField(f"expected an object, got {type(value).__name__}")
        if item is None:
            return dict(value)
        out = {}
        for name, element in value.items():
            try:
                out[str(name)] = item(element)
            except _BadField as error:
                error.path.insert(0, f".{name}")
                raise
        return out

    return read


def _scalar_reader(hint: Any) -> Reader:
    if hint is datetime:
        return _converting(timestamp)
    if hint is Decimal:
        return _converting(exact_decimal)
    if hint is float:

        def read_float(value: Any) -> float:
            kind = type(value)
            if kind is float:
                return value  # type: ignore[no-any-return]
            if kind is int:
                return float(value)
            raise _BadField(f"expected float, got {kind.__name__}")

        return read_float

    def read_exact(value: Any) -> Any:
        if type(value) is hint:  # a bool is not an int here: JSON true is no count
            return value
        if hint is not int and isinstance(value, hint):
            return value
        raise _BadField(f"expected {hint.__name__}, got {type(value).__name__}")

    return read_exact


def _converting(convert: Reader) -> Reader:
    """A field's own reader (or timestamp, exact_decimal): its TypeError or ValueError becomes a _BadField."""

    def read(value: Any) -> Any:
        try:
            return convert(value)
        except (TypeError, ValueError, KeyError) as error:
            raise _BadField(str(error)) from None

    return read


def _with_own_reader(convert: Reader, by_hint: Reader | None) -> Reader:
    """A field's own reader for a value, its type hint's for null (None if Optional, else an error)."""

    def read(value: Any) -> Any:
        if value is None:
            return None if by_hint is None else by_hint(None)
        return convert(value)

    return read


@functools.cache
def _dataclass_reader(cls: Any) -> ObjectReader:
    """The reader of dataclass `cls`, written as Python source and compiled once: a field read is then a few
    bytecodes, where a loop over the fields cost several times more per row (see the module's docstring)."""
    hints = typing.get_type_hints(cls)
    names: dict[str, Any] = {
        "ABSENT": _ABSENT,
        "BadField": _BadField,
        "Mapping": Mapping,
        "absent": _absent,
        "wrong": _wrong_type,
        "as_float": _scalar_reader(float),
    }
    body: list[str] = []
    values: list[str] = []
    for number, field in enumerate(dataclasses.fields(cls)):
        if not field.init:
            continue
        local = f"f{number}"
        values.append(f"{field.name!r}: {local}")
        if field.metadata.get("raw"):
            body.append(f"    {local} = value")
            continue
        json_key = field.metadata.get("json_key", field.name)
        if field.metadata.get("reader") is not None:
            names[f"read{number}"] = _with_own_reader(
                _converting(field.metadata["reader"]), _compile(hints[field.name])
            )
            check = [f"{local} = read{number}({local})"]
        else:
            check = _inline(hints[field.name], local, names, f"read{number}")
        body += [f"    at = {json_key!r}", f"    {local} = get({json_key!r}, ABSENT)", f"    if {local} is ABSENT:"]
        if field.default is not _MISSING:
            names[f"default{number}"] = field.default
            body.append(f"        {local} = default{number}")
        elif field.default_factory is not _MISSING:
            names[f"factory{number}"] = field.default_factory
            body.append(f"        {local} = factory{number}()")
        else:
            body.append(f"        {local} = absent({field.name!r}, known)")
        if check:
            body += ["    else:", *(f"        {line}" for line in check)]
    # The classes of data.py have no __post_init__: an instance is made without __init__ (a frozen dataclass's
    # sets each field through object.__setattr__), its fields put in its __dict__ at once.
    direct = not hasattr(cls, "__post_init__") and not hasattr(cls, "__slots__")
    names.update(cls=cls, new=object.__new__)
    source = "\n".join(
        [
            "def read_object(value, known=None):",
            "    if type(value) is not dict and not isinstance(value, Mapping):",
            "        raise BadField(f'expected an object, got {type(value).__name__}')",
            "    get = value.get",
            "    at = ''",
            "    try:",
            *(f"    {line}" for line in body),
            "    except BadField as error:",
            "        error.path.insert(0, '.' + at)",
            "        raise",
            f"    fields = {{{', '.join(values)}}}",
            "    if known:",
            "        fields.update(known)",
            *(
                ["    instance = new(cls)", "    instance.__dict__.update(fields)", "    return instance"]
                if direct
                else ["    return cls(**fields)"]
            ),
        ]
    )
    exec(compile(source, f"<reader of {cls.__qualname__}>", "exec"), names)
    reader: ObjectReader = names["read_object"]
    return reader


def _absent(name: str, known: Mapping[str, Any] | None) -> Any:
    """A required field the JSON object lacks: its value from `known`, else the object does not fit."""
    if known is not None and name in known:
        return known[name]
    raise _BadField("missing")


def _inline(hint: Any, local: str, names: dict[str, Any], reader_name: str) -> list[str]:
    """Source lines that check (and convert) the value in variable `local` as type `hint` requires: the checks
    of plain values written out, anything else a call of its reader (bound in `names` as `reader_name`)."""
    if hint is Any:
        return []
    if hint in (str, int, bool):
        return [f"if type({local}) is not {hint.__name__}:", f"    raise BadField(wrong({hint.__name__}, {local}))"]
    if hint is float:
        return [f"if type({local}) is not float:", f"    {local} = as_float({local})"]
    if typing.get_origin(hint) in (Union, types.UnionType):
        others = [option for option in typing.get_args(hint) if option is not type(None)]
        if len(others) == 1:
            inner = _inline(others[0], local, names, reader_name)
            return [f"if {local} is not None:", *(f"    {line}" for line in inner)] if inner else []
    names[reader_name] = _compile(hint)
    return [f"{local} = {reader_name}({local})"]


def _wrong_type(expected: type, value: Any) -> str:
    return f"expected {expected.__name__}, got {type(value).__name__}"
