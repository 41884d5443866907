"""Reading what the command line is given: an items file (JSON or JSON Lines), JSON arguments, amounts."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from llm_batch_client.calls import BatchOptions, TierSpec
from llm_batch_client.text import parse_usd

ITEM_KEYS = frozenset({"custom_id", "body", "metadata"})
HEADER_KEYS = frozenset(field.name for field in dataclasses.fields(BatchOptions))
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


class UsageError(Exception):
    """Bad arguments or bad input: one line for the user, exit code 2."""


def checked_item(item: Any, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise UsageError(f'{where}: expected an object {{"custom_id": ..., "body": {{...}}}}')
    unexpected = sorted(set(item) - ITEM_KEYS)
    if unexpected:
        raise UsageError(f'{where}: unexpected key "{unexpected[0]}" (an item has custom_id, body and metadata)')
    if not isinstance(item.get("custom_id"), str) or not item["custom_id"]:
        raise UsageError(f'{where}: "custom_id" must be a non-empty string')
    if not isinstance(item.get("body"), dict):
        raise UsageError(f'{where}: "body" must be an object (a chat-completions body without "model")')
    if item.get("metadata") is not None and not isinstance(item["metadata"], dict):
        raise UsageError(f'{where}: "metadata" must be an object')
    return item


class JsonLinesItems:
    """The items of a JSON Lines file, read line by line each time it is iterated (so the client can send them
    again after a lost answer), the first `limit` only. `check()` reads it once to report a bad line before
    anything is sent."""

    def __init__(self, path: Path, limit: int | None) -> None:
        self.path = path
        self.limit = limit

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return itertools.islice(self._read(), self.limit)

    def _read(self) -> Iterator[dict[str, Any]]:
        with self.path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                where = f"{self.path} line {number}"
                try:
                    item = json.loads(raw)
                except json.JSONDecodeError as error:
                    raise UsageError(f"{where}: not valid JSON: {error.msg} at column {error.colno}") from None
                except UnicodeDecodeError:
                    raise UsageError(f"{where}: not UTF-8 text") from None
                yield checked_item(item, where)

    def check(self) -> int:
        count = sum(1 for _ in self)
        if count == 0:
            raise UsageError(f"{self.path}: no items (expected one JSON object per line)")
        return count


def read_items(path_text: str, limit: int | None) -> tuple[list[dict[str, Any]] | JsonLinesItems, dict[str, Any]]:
    """The items of FILE, and the batch fields it carries (a JSON file may be a whole POST /batches body).

    FILE.jsonl / FILE.ndjson: one item per line, streamed. FILE.json (or any other name holding one JSON
    value): a list of items, or an object with "items" and batch fields."""
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if path.suffix.lower() in JSON_LINES_SUFFIXES:
        return JsonLinesItems(path, limit), {}
    try:
        value = json.loads(path.read_bytes())
    except json.JSONDecodeError as error:
        if path.suffix.lower() == ".json":
            raise UsageError(f"{path}: not valid JSON: {error.msg} at line {error.lineno}") from None
        return JsonLinesItems(path, limit), {}  # a JSON Lines file by another name
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    header: dict[str, Any] = {}
    if isinstance(value, dict):
        if "items" not in value:
            raise UsageError(f'{path}: expected a list of items or an object with "items"')
        unknown = sorted(set(value) - HEADER_KEYS - {"items"})
        if unknown:
            raise UsageError(f'{path}: unknown batch field "{unknown[0]}"')
        header = {name: field for name, field in value.items() if name != "items"}
        value = value["items"]
    if not isinstance(value, list) or not value:
        raise UsageError(f"{path}: expected a non-empty list of items")
    items = [checked_item(item, f"{path} item {n}") for n, item in enumerate(value[:limit], start=1)]
    return items, header


def options_from(header: Mapping[str, Any], overrides: Mapping[str, Any]) -> BatchOptions:
    """BatchOptions from a file's batch fields, the command line's options (those given) winning."""
    values = {**header, **{name: value for name, value in overrides.items() if value is not None}}
    cascade = values.get("cascade")
    try:
        if cascade is not None:
            values["cascade"] = [TierSpec(**tier) if isinstance(tier, dict) else str(tier) for tier in cascade]
    except TypeError:
        raise UsageError('cascade: each tier is a model name or {"model": ..., "params": {...}}') from None
    return BatchOptions(**values)


def json_object(option: str, value: str | None) -> dict[str, Any] | None:
    """A JSON object given inline, or as @FILE."""
    if value is None:
        return None
    text = read_text(option, value[1:]) if value.startswith("@") else value
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{option}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    if not isinstance(parsed, dict):
        raise UsageError(f"{option}: expected a JSON object")
    return parsed


def json_file(option: str, path: str | None) -> dict[str, Any] | None:
    return None if path is None else json_object(option, "@" + path)


def read_text(option: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{option}: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{option}: {path}: {error}") from None


def amount(option: str, value: str | None) -> Decimal | None:
    try:
        return None if value is None else parse_usd(value)
    except ValueError as error:
        raise UsageError(f"{option}: {error}") from None


def model_list(option: str, value: str | None) -> list[str] | None:
    if value is None:
        return None
    models = [name.strip() for name in value.split(",") if name.strip()]
    if not models:
        raise UsageError(f"{option}: name at least one model (m1,m2,...)")
    return models
