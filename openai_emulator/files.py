"""Stored files: uploads (purpose ``batch`` and the others) and the batches' output and error files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openai_emulator.errors import ApiError, no_such

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MIN_EXPIRY = 3_600
MAX_EXPIRY = 2_592_000


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    created_at: float
    content: bytes
    expires_at: float | None

    def to_object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None if self.expires_at is None else int(self.expires_at),
            "status_details": None,
        }


def check_upload(filename: str, purpose: str, size: int, max_batch: int, max_any: int) -> None:
    """OpenAI's checks of an upload; the lines of a batch file are not read (a malformed file is accepted)."""
    if purpose not in PURPOSES:
        raise ApiError(400, f"'{purpose}' is not one of {list(PURPOSES)} - 'purpose'", param="purpose")
    if size > max_any or (purpose == "batch" and size > max_batch):
        raise ApiError(400, "File is too large.")
    if purpose == "batch" and not filename.lower().endswith(".jsonl"):
        raise ApiError(400, "Invalid file format for Batch API. Must be .jsonl")


def expiry_seconds(anchor: str | None, seconds: str | None, default: int | None) -> int | None:
    """``expires_after[anchor]`` / ``expires_after[seconds]`` of an upload (multipart fields)."""
    if anchor is None and seconds is None:
        return default
    if anchor != "created_at":
        raise ApiError(
            400, f"Invalid value: '{anchor}'. Supported values are: 'created_at'.", param="expires_after.anchor"
        )
    return bounded_seconds(seconds, "expires_after.seconds")


def bounded_seconds(value: Any, param: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"Invalid type for '{param}': expected an integer, but got {value!r} instead.", param=param)
    if value < MIN_EXPIRY:
        message = (
            f"Invalid '{param}': integer below minimum value. "
            f"Expected a value >= {MIN_EXPIRY}, but got {value} instead."
        )
        raise ApiError(400, message, param=param, code="integer_below_min_value")
    if value > MAX_EXPIRY:
        message = (
            f"Invalid '{param}': integer above maximum value. "
            f"Expected a value <= {MAX_EXPIRY}, but got {value} instead."
        )
        raise ApiError(400, message, param=param, code="integer_above_max_value")
    return value


class FileStore:
    """Files by id. Not locked: the emulator's store lock guards every call. Expired files are gone."""

    def __init__(self) -> None:
        self.files: dict[str, StoredFile] = {}

    def add(self, stored: StoredFile) -> StoredFile:
        self.files[stored.id] = stored
        return stored

    def get(self, file_id: str, now: float) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is not None and stored.expires_at is not None and stored.expires_at <= now:
            del self.files[file_id]
            stored = None
        if stored is None:
            raise no_such("File", file_id)
        return stored

    def delete(self, file_id: str, now: float) -> dict[str, Any]:
        self.get(file_id, now)
        del self.files[file_id]
        return {"id": file_id, "object": "file", "deleted": True}

    def page(self, now: float, after: str | None, limit: int, order: str, purpose: str | None) -> dict[str, Any]:
        live = [f for f in self.files.values() if f.expires_at is None or f.expires_at > now]
        live = [f for f in live if purpose is None or f.purpose == purpose]
        live.sort(key=lambda f: (f.created_at, f.id), reverse=order == "desc")
        start = 0
        if after is not None:
            positions = [i for i, f in enumerate(live) if f.id == after]
            start = positions[0] + 1 if positions else len(live)
        page = live[start : start + limit]
        data = [f.to_object() for f in page]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": start + limit < len(live),
        }
